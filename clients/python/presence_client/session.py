"""One socket to the edge: its welcome, the requests awaiting their answers by `ref`, and heartbeats after a quiet
interval; how it is opened (the URL, a refused handshake) and how a channel is entered on it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from presence_client.errors import PresenceError
from presence_client.presence import ChannelPresence
from presence_client.records import Welcome

HANDSHAKE_RETRIABLE = frozenset({429, 500, 502, 503, 504})


class Lost(Exception):
    """The socket a request went out on ended before its answer."""


@dataclass(eq=False)
class Session:
    ws: ClientConnection
    welcome: Welcome
    opened_at: float = field(default_factory=time.monotonic)
    last_sent: float = field(default_factory=time.monotonic)
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    closing_error: PresenceError | None = None  # the error frame that came before the close
    heartbeats: asyncio.Task[None] | None = None

    async def send(self, frame: dict[str, Any]) -> None:
        self.last_sent = time.monotonic()
        await self.ws.send(json.dumps(frame))

    async def heartbeat(self) -> None:
        every_s = self.welcome.heartbeat_s / 2  # half: a late wake-up or a slow network still arrives in time
        with contextlib.suppress(ConnectionClosed):
            while True:  # any frame counts as a sign of life: a heartbeat only after a quiet interval
                quiet_s = time.monotonic() - self.last_sent
                if quiet_s >= every_s:
                    await self.send({"type": "heartbeat"})
                    quiet_s = 0
                await asyncio.sleep(every_s - quiet_s)

    def end(self) -> None:
        if self.heartbeats is not None:
            self.heartbeats.cancel()
        for future in self.pending.values():
            if not future.done():
                future.set_exception(Lost())


def socket_url(url: str, token: str | None, device: str | None, metadata: dict[str, Any] | None) -> str:
    parts = urlsplit(url)
    query: dict[str, str] = {"token": token or ""}
    if device is not None:
        query["device"] = device
    if metadata is not None:
        query["metadata"] = json.dumps(metadata)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/realtime/ws", urlencode(query), ""))


def refusal(exc: InvalidStatus) -> PresenceError:
    """The edge refused the handshake with an HTTP error body."""
    status = exc.response.status_code
    try:
        body = json.loads(exc.response.body or b"{}").get("error", {})
    except ValueError:
        body = {}
    error = PresenceError.from_body({"code": f"http.{status}", **body})
    error.retriable = error.retriable or status in HANDSHAKE_RETRIABLE
    return error


def enter_frame(presence: ChannelPresence, since: int | None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "join" if presence.joined else "subscribe", "channel": presence.channel}
    if since is not None:
        frame["since"] = since
    return frame

"""A test WebSocket client that keeps the channel views it was sent, as a real client would."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlencode

import orjson
import websockets

Frame = dict[str, Any]


class Client:
    def __init__(self, url: str, token: str, **params: str) -> None:
        self.url = f"{url}?{urlencode({'token': token, **params})}"
        self.frames: list[Frame] = []
        self.views: dict[str, dict[str, Any]] = {}  # channel -> {"seq": int, "members": {user_id: member}}
        self._arrived = asyncio.Condition()
        self._ws: Any = None
        self.user_id = ""
        self._reader: asyncio.Task[None] | None = None

    async def connect(self) -> Frame:
        self._ws = await websockets.connect(self.url)
        self._reader = asyncio.create_task(self._read())
        welcome = await self.next(lambda f: f["type"] == "welcome")
        self.user_id = welcome["user_id"]
        return welcome

    async def send(self, **frame: Any) -> None:
        await self._ws.send(orjson.dumps(frame).decode())

    async def send_raw(self, data: str | bytes) -> None:
        await self._ws.send(data)

    async def join(self, channel: str) -> Frame:
        start = len(self.frames)
        await self.send(type="join", channel=channel)
        return await self.next(lambda f: f["type"] == "presence.snapshot" and f["channel"] == channel, after=start)

    async def next(self, match: Callable[[Frame], bool], timeout_s: float = 10.0, after: int = 0) -> Frame:
        deadline = time.monotonic() + timeout_s
        async with self._arrived:
            while True:
                for frame in self.frames[after:]:
                    if match(frame):
                        return frame
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching frame within {timeout_s} s; got {self.frames[after:]}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)

    async def error(self, after: int) -> Frame:
        return await self.next(lambda f: f["type"] == "error", after=after)

    def members(self, channel: str) -> dict[str, Any]:
        return self.views.get(channel, {}).get("members", {})

    def typing(self, channel: str) -> list[str]:
        return self.views.get(channel, {}).get("typing", [])

    async def close(self, code: int = 1000) -> None:
        await self._ws.close(code=code)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)

    async def abort(self) -> None:
        """Drop the TCP connection without a close handshake, like a crashed client."""
        self._ws.transport.abort()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        try:
            async for message in self._ws:
                frame = orjson.loads(message)
                self._track(frame)
                async with self._arrived:
                    self.frames.append(frame)
                    self._arrived.notify_all()
        except websockets.ConnectionClosed:
            pass

    def _track(self, frame: Frame) -> None:
        if frame["type"] == "presence.snapshot":
            self.views[frame["channel"]] = {
                "seq": frame["seq"], "members": {m["user_id"]: m for m in frame["members"]}, "typing": frame["typing"]
            }
        elif frame["type"] in ("presence.diff", "presence.batch"):
            view = self.views.get(frame["channel"])
            if view is None or frame["seq"] <= view["seq"]:
                return
            first = frame.get("from_seq", frame["seq"])
            assert first == view["seq"] + 1, f"gap in diffs: {view['seq']} -> {first}"
            view["seq"] = frame["seq"]
            view["typing"] = frame["typing"]
            for m in frame["joins"] + frame["updates"]:
                view["members"][m["user_id"]] = m
            for d in frame["leaves"]:
                view["members"].pop(d["user_id"], None)


@contextlib.asynccontextmanager
async def heartbeating(*clients: Client) -> AsyncIterator[None]:
    """Keeps the clients alive with a heartbeat every 0.5 s; a client whose socket failed is skipped."""

    async def beat() -> None:
        while True:
            for client in clients:
                with contextlib.suppress(Exception):  # e.g. the client of an edge a test killed
                    await client.send(type="heartbeat")
            await asyncio.sleep(0.5)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


async def wait_for_processor(ws_url: str, token: str, channel: str, timeout_s: float = 120) -> None:
    """Workers join their consumer group some seconds after they start; wait until presence flows."""
    probe = Client(ws_url, token)
    await probe.connect()
    async with heartbeating(probe):  # a silent socket is closed at its timeout, long before the worker is up
        await probe.join(channel)
        await probe.next(lambda f: f["type"] == "presence.diff" and f["channel"] == channel, timeout_s=timeout_s)
    await probe.close()

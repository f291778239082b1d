"""The connection to an edge: one WebSocket at a time, heartbeats, requests matched to their answers
by `ref`, reconnects that resume every channel; the REST reads are in rest.py.

- `open()` makes the first connection; if it fails, that error is raised.
- A socket that ends for any other reason than the closes below is opened again after a backoff
  delay (backoff.py); every channel is joined or subscribed again with `since` = its last applied
  `seq` (the edge answers `presence.resumed` and the missed diffs, or a snapshot), and every watch
  is sent again. A request awaiting its answer when the socket ended is sent again on the next one.
- Closes that end the client: 4403 (origin), 4409 (a service forced the user offline: reconnecting
  would undo it), 4401 (token refused or expired) unless a `token_provider` can give a new token.
  With a provider, the client also re-authenticates the open socket on `auth.expiring`.
- An `error` frame answers the request its `ref` names (docs/api.md); one without `ref` is about a
  frame sent without one (typing, heartbeat) and answers no request: it is logged. Errors that close
  the socket answer no request either: they say why it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Iterable
from types import TracebackType
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from presence_client.backoff import Backoff
from presence_client.errors import (
    AuthenticationError,
    ClientClosedError,
    ConnectError,
    ForcedOfflineError,
    PresenceClientError,
    PresenceError,
)
from presence_client.presence import ChannelPresence, Throttle, WatchedUsers
from presence_client.records import QueryResult, UserChange, UserGone, UserPresence, Welcome
from presence_client.rest import Rest
from presence_client.session import Lost, Session, enter_frame, refusal, socket_url
from presence_client.tokens import TokenProvider, Tokens

log = logging.getLogger("presence_client")

CHANNEL_FRAMES = frozenset({"presence.snapshot", "presence.diff", "presence.batch", "presence.resumed"})
# Error codes sent just before the edge closes the socket: they say why, they answer no request.
CLOSING_CODES = frozenset({"connection.timed_out", "connection.slow_consumer", "service.broker_unavailable",
                           "limit.abuse", "connection.forced_offline", "server.internal", "auth.token_expired",
                           "auth.invalid_token", "auth.missing_token"})


class Client:
    """A client of the edge at `url` (`http://...`); `async with Client(url, token=...) as client`
    (or `connect(...)`) opens the first socket and closes cleanly at the end."""

    def __init__(self, url: str, token: str | None = None, *, token_provider: TokenProvider | None = None,
                 device: str | None = None, metadata: dict[str, Any] | None = None,
                 backoff: Backoff | None = None, typing_interval_s: float = 1.0,
                 request_timeout_s: float = 30.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if token is None and token_provider is None:
            raise ValueError("give a token or a token_provider")
        self.url = url.rstrip("/")
        self._tokens = Tokens(token, token_provider)
        self._device = device
        self._metadata = metadata
        self._backoff = backoff or Backoff()
        self._typing_interval_s = typing_interval_s
        self._request_timeout_s = request_timeout_s
        self._refs = itertools.count(1)
        self._channels: dict[str, ChannelPresence] = {}
        self._watches: list[WatchedUsers] = []
        self._session: Session | None = None
        self._live = asyncio.Event()  # set while a session is open, and once the client has ended
        self._ended: PresenceClientError | None = None
        self._done = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._http = httpx.AsyncClient(base_url=self.url, timeout=request_timeout_s, transport=transport)
        self._rest = Rest(self._http, self._tokens)
        self.welcome: Welcome | None = None  # of the current (or last) connection
        self.token_expires_at: int | None = None  # epoch ms, as the edge holds it for the open socket
        self.connections = 0  # sockets opened so far

    # Lifecycle

    async def __aenter__(self) -> Client:
        await self.open()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        try:
            if self._tokens.current is None:
                await self._tokens.fresh()
            session = await self._connect()
        except (OSError, TimeoutError, WebSocketException) as exc:
            await self._http.aclose()
            raise ConnectError(f"no socket to {self.url}: {exc!r}") from exc
        except BaseException:
            await self._http.aclose()
            raise
        self._runner = asyncio.create_task(self._run(session), name="presence-client")

    async def close(self) -> None:
        """Closes the socket cleanly (1000: the user leaves at once) and ends every handle."""
        self._end(ClientClosedError("the client was closed"))
        session, self._session = self._session, None
        if session is not None:
            session.end()
            with contextlib.suppress(WebSocketException, OSError):
                await session.ws.close(1000)
        for task in (self._runner, *self._tasks):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._http.aclose()

    async def wait_closed(self) -> None:
        """Returns when the client is closed; raises the error that ended it, if one did."""
        await self._done.wait()
        if self._ended is not None and not isinstance(self._ended, ClientClosedError):
            raise self._ended

    @property
    def connected(self) -> bool:
        """A socket is open now (False while reconnecting, and once closed)."""
        return self._session is not None

    @property
    def user_id(self) -> str:
        assert self.welcome is not None, "not connected yet"
        return self.welcome.user_id

    # Channels

    async def join(self, channel: str) -> ChannelPresence:
        """Be present in `channel` and keep its presence; answers once the first view is held."""
        return await self._enter(channel, joined=True)

    async def subscribe(self, channel: str) -> ChannelPresence:
        """Keep `channel`'s presence without being present in it."""
        return await self._enter(channel, joined=False)

    async def leave(self, channel: str) -> None:
        presence = self._channels.pop(channel, None)
        if presence is None:
            return
        presence.listeners.end(ClientClosedError(f"left {channel!r}"))
        try:
            await self.request({"type": "leave" if presence.joined else "unsubscribe", "channel": channel})
        except PresenceError as exc:
            if exc.code not in ("channel.not_joined", "channel.not_subscribed"):  # a reconnect came between
                raise

    unsubscribe = leave

    async def _enter(self, channel: str, joined: bool) -> ChannelPresence:
        if channel in self._channels:
            raise ValueError(f"{channel!r} is joined or subscribed already")
        presence = ChannelPresence(self, channel, joined, Throttle(self._typing_interval_s))
        self._channels[channel] = presence
        try:
            await self.request({"type": "join" if joined else "subscribe", "channel": channel})
        except BaseException:
            self._channels.pop(channel, None)
            raise
        return presence

    # Status, metadata, watches

    async def set_status(self, status: str, text: str | None = None, emoji: str | None = None,
                         expires_in_s: float | None = None, metadata: dict[str, Any] | None = None) -> str:
        """Sets the user's status (and its text, emoji and expiry; `""` clears a text); answers the event id."""
        return await self._update(status=status, status_text=text, status_emoji=emoji, expires_in_s=expires_in_s,
                                  metadata=metadata)

    async def set_metadata(self, metadata: dict[str, Any]) -> str:
        """Replaces the user's metadata; answers the event id."""
        return await self._update(metadata=metadata)

    async def _update(self, **fields: Any) -> str:
        ack = await self.request({"type": "update", **{k: v for k, v in fields.items() if v is not None}})
        return str(ack["event_id"])

    async def watch(self, user_ids: Iterable[str]) -> WatchedUsers:
        """Follows these users' presence (a friends list) over the socket."""
        watched = WatchedUsers(self, frozenset(user_ids))
        self._watches.append(watched)
        try:
            await self.request({"type": "watch", "users": sorted(watched.user_ids)})
        except BaseException:
            self._watches.remove(watched)
            raise
        return watched

    async def unwatch(self, watched: WatchedUsers) -> None:
        if watched not in self._watches:
            return
        self._watches.remove(watched)
        watched.listeners.end(ClientClosedError("unwatched"))
        still = set().union(*(w.user_ids for w in self._watches))
        if dropped := sorted(watched.user_ids - still):
            await self.request({"type": "unwatch", "users": dropped})

    # REST

    async def user(self, user_id: str) -> UserPresence:
        return await self._rest.user(user_id)

    async def query(self, user_ids: Iterable[str]) -> QueryResult:
        return await self._rest.query(user_ids)

    # The socket

    async def request(self, frame: dict[str, Any], resend: bool = True) -> dict[str, Any]:
        """Sends a frame with a fresh `ref` and answers the frame that answers it; sent again on the next
        socket if this one ends first (unless not `resend`: then `Lost`). Raises `PresenceError` on an
        `error` answer; `TimeoutError` if no answer came within `request_timeout_s`, reconnects included."""
        async with asyncio.timeout(self._request_timeout_s):
            return await self._request(frame, resend)

    async def _request(self, frame: dict[str, Any], resend: bool) -> dict[str, Any]:
        while True:
            session = await self._live_session()
            ref = next(self._refs)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            session.pending[ref] = future
            try:
                await session.send({**frame, "ref": ref})
                return await future
            except (Lost, ConnectionClosed):
                if not resend:
                    raise Lost() from None
                continue
            finally:
                session.pending.pop(ref, None)

    async def send(self, frame: dict[str, Any]) -> None:
        """Sends a frame that gets no answer (typing); dropped while no socket is open."""
        if self._ended is not None:
            raise self._ended
        if self._session is not None:
            with contextlib.suppress(ConnectionClosed):
                await self._session.send(frame)

    async def _live_session(self) -> Session:
        while True:
            if self._ended is not None:
                raise self._ended
            if self._session is not None:
                return self._session
            self._live.clear()
            await self._live.wait()

    async def _connect(self) -> Session:
        """Opens a socket, takes its welcome, and resumes every channel and watch on it."""
        try:
            ws = await websockets.connect(socket_url(self.url, self._tokens.current, self._device, self._metadata),
                                          open_timeout=self._request_timeout_s)
        except InvalidStatus as exc:
            raise refusal(exc) from exc
        try:
            first = json.loads(await ws.recv())
            if first.get("type") != "welcome":
                raise PresenceError.from_body(first)  # e.g. service.broker_unavailable, then a close
            session = Session(ws, Welcome.from_json(first))
            for presence in self._channels.values():
                if presence.view.seq is not None:  # one still waiting for its first view: its request goes again
                    since = None if presence.view.resync_pending else presence.view.seq
                    await session.send(enter_frame(presence, since))
            if watched := set().union(*(w.user_ids for w in self._watches)):
                await session.send({"type": "watch", "users": sorted(watched)})
        except BaseException:
            await ws.close()
            raise
        session.heartbeats = asyncio.create_task(session.heartbeat(), name="presence-heartbeats")
        self.welcome, self._session = session.welcome, session
        self._metadata = None  # the edge stores it with the user: a reconnect must not undo a later update
        self.token_expires_at = session.welcome.token_expires_at
        self.connections += 1
        self._live.set()
        return session

    async def _run(self, session: Session) -> None:
        try:
            while True:
                await self._serve(session)
                session.end()
                if self._ended is not None:
                    return
                self._session = None
                self._backoff.connection_ended(time.monotonic() - session.opened_at)
                code = session.ws.close_code or 1006
                if (error := self._terminal(code, session.closing_error)) is not None:
                    self._end(error)
                    return
                log.info("socket closed (%s, %s); reconnecting", code, session.closing_error)
                session = await self._reconnect(refresh_token=code == 4401)
        except PresenceClientError as exc:
            self._end(exc)
        except Exception as exc:  # a bug here must end the client loudly, not leave it silently dead
            log.exception("presence client failed")
            self._end(PresenceClientError(f"the client failed: {exc!r}"))

    async def _reconnect(self, refresh_token: bool) -> Session:
        while True:
            await asyncio.sleep(self._backoff.next_delay())
            try:
                if refresh_token:
                    await self._tokens.fresh()
                return await self._connect()
            except PresenceError as exc:
                if isinstance(exc, AuthenticationError) and self._tokens.provider is not None:
                    refresh_token = True
                elif not exc.retriable:
                    raise
            except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
                log.info("reconnect failed: %r", exc)

    def _terminal(self, code: int, error: PresenceError | None) -> PresenceClientError | None:
        if code == 4409:
            return error if isinstance(error, ForcedOfflineError) else ForcedOfflineError("connection.forced_offline")
        if code == 4403:
            return error or PresenceError("auth.origin_forbidden")
        if code == 4401 and self._tokens.provider is None:
            return error or AuthenticationError("auth.invalid_token")
        return None

    async def _serve(self, session: Session) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in session.ws:
                await self._dispatch(session, json.loads(message))

    async def _dispatch(self, session: Session, frame: dict[str, Any]) -> None:
        kind, ref = frame.get("type"), frame.get("ref")
        if kind == "error":
            self._answer_error(session, PresenceError.from_body(frame), ref)
            return
        if kind in CHANNEL_FRAMES and (presence := self._channels.get(frame["channel"])) is not None:
            applied = presence.view.apply(frame)
            for change in applied.changes:
                presence.listeners.emit(change)
            if applied.resync:
                await session.send(enter_frame(presence, since=None))
        elif kind == "presence.users":
            users = {u.user_id: u for u in map(UserPresence.from_json, frame["users"])}
            for watched in self._watches:
                watched.answered({k: v for k, v in users.items() if k in watched.user_ids},
                                 frozenset(frame.get("not_found", ())) & watched.user_ids)
        elif kind in ("presence.user", "presence.user.gone"):
            user: UserChange = (UserPresence.from_json(frame["user"]) if kind == "presence.user"
                                else UserGone(frame["user_id"]))
            for watched in self._watches:
                if user.user_id in watched.user_ids:
                    watched.changed(user)
        elif kind == "auth.expiring" and self._tokens.provider is not None:
            self._spawn(self._reauthenticate())
        if ref is not None and (future := session.pending.get(ref)) is not None and not future.done():
            future.set_result(frame)

    def _answer_error(self, session: Session, error: PresenceError, ref: object) -> None:
        if error.code in CLOSING_CODES:
            session.closing_error = error
            return
        # An error without a ref is about a frame sent without one (typing, heartbeat): no request waits for it.
        future = session.pending.get(ref) if isinstance(ref, int) else None
        if future is not None and not future.done():
            future.set_exception(error)
        else:
            log.warning("error frame answering no request: %s", error)

    async def _reauthenticate(self) -> None:
        token = await self._tokens.fresh()
        try:  # not sent again on a new socket: that one opens with the token of its own time
            ack = await self.request({"type": "auth", "token": token}, resend=False)
            self.token_expires_at = ack.get("token_expires_at")
        except Lost:
            pass
        except PresenceError as exc:  # the socket closes at expiry with 4401; the reconnect takes a new token
            log.warning("re-authentication refused: %s", exc)

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _end(self, error: PresenceClientError) -> None:
        if self._ended is not None:
            return
        self._ended = error
        if not isinstance(error, ClientClosedError):
            log.warning("presence client ended: %s", error)
        for presence in self._channels.values():
            presence.listeners.end(error)
        for watched in self._watches:
            watched.listeners.end(error)
        if self._session is not None:
            for future in self._session.pending.values():
                if not future.done():
                    future.set_exception(error)
        self._live.set()
        self._done.set()


# `async with connect(url, token=...) as client`: the client of the edge at `url` (http://127.0.0.1:8080).
connect = Client

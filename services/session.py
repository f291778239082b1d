"""The session of one connected device: the user's connection in the log, for as long as its socket lives.

Frames in: `join`, `leave`, `subscribe`, `unsubscribe`, `typing.start`, `typing.stop`, `heartbeat`,
`update`, `watch`, `unwatch`, `auth` (services.protocol). Frames out: `welcome`, `presence.snapshot`,
`presence.resumed`, `presence.batch`, `presence.diff`, `presence.users`, `presence.user`,
`presence.user.gone`, `ack`, `error`, `auth.expiring` (docs/api.md). Every state change is written
to the log and acknowledged by Kafka before the client gets its answer; what other members see
comes back through the processor and `presence.channels`, never from this process directly.

A socket is never left open while its connection no longer counts as live: the edge closes it with
`connection.timed_out` (4408) when it sent nothing for longer than its presence timeout
(services/liveness.py), or when the processor no longer holds its connection, for example after
timing it out because its heartbeats did not reach the log in time (services/processor_watch.py).
The client reconnects and is online again. A service that forced the user offline ends every socket
of the user with `connection.forced_offline` (4409): the client must not reconnect by itself.
A socket also lives no longer than its token (services/token_lifetime.py).

Every close the session starts goes through `Session._expel`: the error frame, then the close frame,
written within `CLOSE_WAIT_S`, else the connection is aborted (services/ws_protocol.py).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from starlette.websockets import WebSocket

from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    Event,
    TypingStarted,
    TypingStopped,
)
from services import metrics, request_ids
from services.auth import Principal
from services.edge import Edge
from services.errors import ApiError
from services.event_log import new_id, now_ms
from services.fanout import diff_frame, snapshot_frame
from services.processor_watch import GoneCause
from services.protocol import (
    MAX_USER_IDS,
    Auth,
    Command,
    Heartbeat,
    Join,
    Leave,
    Subscribe,
    TypingStart,
    TypingStop,
    Unsubscribe,
    Unwatch,
    Update,
    Watch,
    frame_ref,
    parse_frame,
)
from services.rate_limit import RateLimit
from services.token_lifetime import TokenLifetime
from services.updates import update_event
from services.ws_protocol import ABORT

log = logging.getLogger(__name__)

CLEAN_CLOSE_CODES = {1000, 1001}  # normal closure, going away: the user left
# uvicorn reports a vanished TCP peer as 1005 (no status), so a close frame without a code counts as dropped.
OUTBOX_FRAMES = 1000  # frames queued for one slow client before it is disconnected
TYPING_THROTTLE_MS = 1000
CLOSE_WAIT_S = 5.0  # for the last frames and the close frame to be written; then the connection is aborted


class Session:
    """A user's socket: the frames it sends, the frames it gets, and the connection it is in the log."""

    def __init__(self, websocket: WebSocket, principal: Principal, edge: Edge, device: str | None,
                 metadata: dict[str, Any] | None) -> None:
        self.websocket = websocket
        self.principal = principal
        self.edge = edge
        self.device = device
        self.metadata = metadata
        self.connection_id = new_id()
        self.typing_written: dict[str, int] = {}  # channel -> when typing.started was last written
        self._rate = RateLimit(edge.settings.max_frames_per_s)
        self.channels: set[str] = set()  # joined: present in them
        self.observing: set[str] = set()  # subscribed to without being present
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue(OUTBOX_FRAMES)
        self._close_code: int | None = None
        self._closing: asyncio.Task[None] | None = None  # held so the close is not garbage-collected
        self._timeout_ms = edge.settings.timeout_ms  # the connection's own, as its events set it
        self._channel_timeouts: dict[str, int] = {}  # joined channels with a timeout of their own
        self._silent_since: int | None = None  # its last frame, once ended for silence
        self._token = TokenLifetime(self.reply, self._expel)

    async def _write(self, event: Event) -> None:
        """Writes an event of this connection's user; being one, it is their activity in the log."""
        await self.edge.log.write(event)
        self.edge.liveness.activity_logged(self.connection_id, event.at)

    def _event(self, cls: type, **fields: Any) -> Any:
        return cls(
            event_id=new_id(),
            user_id=self.principal.user_id,
            connection_id=self.connection_id,
            edge_id=self.edge.settings.edge_id,
            at=now_ms(),
            **fields,
        )

    def push(self, frame: bytes) -> None:
        if self._close_code is not None:
            return  # being closed: the error frame and the close are the last it gets
        try:
            self._outbox.put_nowait(frame)
            metrics.FRAMES_OUT.inc()
        except asyncio.QueueFull:
            log.warning("closing slow consumer %s", self.connection_id)
            # What is queued is stale already; the client resumes with `since` or a snapshot when it reconnects.
            while not self._outbox.empty():
                self._outbox.get_nowait()
            self._expel(ApiError("connection.slow_consumer", f"{OUTBOX_FRAMES} frames were waiting to be read"))

    def reply(self, body: dict[str, Any]) -> None:
        self.push(orjson.dumps(body))

    async def run(self) -> None:
        settings = self.edge.settings
        opened = self._event(
            ConnectionOpened, timeout_ms=settings.timeout_ms, device=self.device, metadata=self.metadata,
            idle_after_ms=self.edge.policy.idle_after_ms,
        )
        # Held before the open is written, so the first state of the processor that holds it is read.
        self.edge.held.hold(self.principal.user_id, self.connection_id, self._gone_from_processor)
        try:
            await self.edge.log.write(opened)
        except ApiError as exc:
            self.edge.held.release(self.principal.user_id, self.connection_id)
            await self.websocket.send_text(orjson.dumps({"type": "error", **exc.body()}).decode())
            await self.websocket.close(code=exc.error.ws_close or 1011)
            return
        self.edge.liveness.track(self.connection_id, self.principal.user_id, opened.at,
                                 timeout_ms=self._timeout_in_force(), on_silent=self._silent)
        self._writer = asyncio.create_task(self._write_forever(), name=f"ws-writer-{self.connection_id}")
        self.reply(self._welcome())
        self._token.time(self.principal.expires_at)
        clean = False
        metrics.CONNECTIONS.inc()
        self.edge.sessions[self.principal.user_id] += 1
        try:
            clean = await self._read_forever()
        finally:
            metrics.CONNECTIONS.dec()
            self.edge.sessions[self.principal.user_id] -= 1
            if not self.edge.sessions[self.principal.user_id]:
                del self.edge.sessions[self.principal.user_id]
            await asyncio.shield(self._end(clean))

    async def _read_forever(self) -> bool:
        """Handle frames until the socket ends; True when the client closed it cleanly."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return message.get("code", 1000) in CLEAN_CLOSE_CODES
            if self._close_code is not None:  # being closed: nothing more is handled, nor acknowledged
                return False
            text = message.get("text")
            # Any frame shows the connection is alive; anything but a heartbeat shows the user is active.
            at = now_ms()
            self.edge.liveness.touch(self.connection_id, at, active=False)
            command: Command | None = None
            try:
                self._rate.take()
                if text is None:
                    raise ApiError("request.binary_frame")
                command = parse_frame(text, self.edge.limits)
                if not isinstance(command, Heartbeat):
                    self.edge.liveness.touch(self.connection_id, at, active=True)
                await self._handle(command)
            except ApiError as exc:
                self.edge.liveness.touch(self.connection_id, at, active=True)
                if exc.error.ws_close is not None:
                    self._expel(exc)
                    return False
                metrics.ERRORS.labels(exc.error.code).inc()
                ref = command.ref if command is not None else frame_ref(text, self.edge.limits)
                self.reply({"type": "error", **exc.body(), **({"ref": ref} if ref is not None else {})})

    async def _handle(self, command: Command) -> None:
        metrics.FRAMES_IN.labels(type(command).__name__.lower()).inc()
        match command:
            case Join(channel=channel, since=since, ref=ref):
                self.principal.require_channel(channel)
                if channel not in self.channels:
                    self._check_channel_limit()
                    timeout_ms = self.edge.policy.channel_timeout_ms(channel)
                    await self._write(self._event(ChannelJoined, channel=channel, timeout_ms=timeout_ms))
                    self.channels.add(channel)
                    if timeout_ms is not None:
                        self._channel_timeouts[channel] = timeout_ms
                        self._timeout_changed()
                self._start_pushing(channel, since, ref)
            case Leave(channel=channel, ref=ref):
                if channel not in self.channels:
                    raise ApiError("channel.not_joined", f"not joined to {channel!r}")
                await self._write(self._event(ChannelLeft, channel=channel))
                self.channels.discard(channel)
                if self._channel_timeouts.pop(channel, None) is not None:
                    self._timeout_changed()
                self.typing_written.pop(channel, None)
                self._stop_pushing(channel)
                self.reply({"type": "ack", "ref": ref, "channel": channel})
            case Subscribe(channel=channel, since=since, ref=ref):
                self.principal.require_channel(channel)
                if channel not in self.observing:
                    self._check_channel_limit()
                self.observing.add(channel)
                self._start_pushing(channel, since, ref)
            case Unsubscribe(channel=channel, ref=ref):
                if channel not in self.observing:
                    raise ApiError("channel.not_subscribed", f"not subscribed to {channel!r}")
                self.observing.discard(channel)
                self._stop_pushing(channel)
                self.reply({"type": "ack", "ref": ref, "channel": channel})
            case TypingStart(channel=channel, timeout_s=timeout_s):
                await self._typing_start(channel, timeout_s)
            case TypingStop(channel=channel):
                if self.typing_written.pop(channel, None) is not None:
                    await self._write(self._event(TypingStopped, channel=channel))
            case Update(ref=ref) as update:
                event = update_event(
                    update, self.edge.policy, event_id=new_id(), user_id=self.principal.user_id,
                    connection_id=self.connection_id, edge_id=self.edge.settings.edge_id, at=now_ms(),
                )
                await self._write(event)
                if event.timeout_ms is not None:  # the processor sets it on every connection of the user
                    self._timeout_ms = event.timeout_ms
                    self._timeout_changed()
                self.reply({"type": "ack", "ref": ref, "event_id": event.event_id})
            case Watch(users=users, ref=ref):
                watched = self.edge.watchers.watching(self)
                if len(watched) + sum(u not in watched for u in users) > MAX_USER_IDS:
                    raise ApiError("limit.watched_users", f"a connection watches at most {MAX_USER_IDS} users")
                views, not_found = self.edge.watchers.watch(self, users)
                self.reply({"type": "presence.users", "ref": ref, "users": views, "not_found": not_found})
            case Unwatch(users=users, ref=ref):
                self.edge.watchers.unwatch(self, users)
                self.reply({"type": "ack", "ref": ref})
            case Auth(token=token, ref=ref):
                await self._reauthenticate(token, ref)
            case Heartbeat():
                pass  # liveness was already noted for every frame

    def _welcome(self) -> dict[str, Any]:
        settings = self.edge.settings
        return {
            "type": "welcome",
            "connection_id": self.connection_id,
            "user_id": self.principal.user_id,
            "edge_id": settings.edge_id,
            "heartbeat_s": settings.heartbeat_s,
            "timeout_s": settings.timeout_s,
            "typing_timeout_s": self.edge.policy.typing_timeout_s,
            "request_id": request_ids.current(),
            "token_expires_at": self.principal.expires_at,
        }

    async def _reauthenticate(self, token: str, ref: object) -> None:
        """A fresh token of the same user (or service) replaces the socket's; a token that does not verify
        ends the socket like one at connect (`auth.invalid_token`)."""
        principal = await self.edge.auth.authenticate(token)
        if (principal.user_id, principal.service) != (self.principal.user_id, self.principal.service):
            raise ApiError("auth.user_mismatch", "the token is for another user than this socket's")
        self.principal = principal
        self._token.time(self.principal.expires_at)
        self.reply({"type": "ack", "ref": ref, "token_expires_at": principal.expires_at})

    def _timeout_in_force(self) -> int:
        """As the processor computes it (`Connection.timeout_in_force_ms`) from this connection's events."""
        return min((self._timeout_ms, *self._channel_timeouts.values()))

    def _timeout_changed(self) -> None:
        self.edge.liveness.set_timeout(self.connection_id, self._timeout_in_force())

    def _silent(self) -> None:
        self._silent_since = self.edge.liveness.last_activity(self.connection_id)
        limit_ms = self.edge.liveness.silence_limit_ms(self.connection_id) or self._timeout_in_force()
        self._expel(ApiError("connection.timed_out", "no frame for longer than the connection's presence timeout "
                             f"({limit_ms / 1000:g} s)"))

    def _gone_from_processor(self, cause: GoneCause) -> None:
        if cause == "forced_offline":
            self._expel(ApiError("connection.forced_offline", "a service forced the user offline"))
            return
        self._expel(ApiError("connection.timed_out", "the processor no longer holds the connection: it timed it out "
                             "(its heartbeats did not reach the log within the presence timeout), or the user was "
                             "erased"))

    def _expel(self, exc: ApiError) -> None:
        """Closes the socket with the error's close code; its connection no longer counts as live."""
        if self._close_code is not None:
            return
        log.info("closing %s of %s: %s", self.connection_id, self.principal.user_id, exc.message)
        metrics.ERRORS.labels(exc.error.code).inc()
        self.reply({"type": "error", **exc.body()})
        self._close_code = exc.error.ws_close or 1008
        self._closing = asyncio.create_task(self._close_now(self._close_code, exc.error.code))

    async def _close_now(self, code: int, reason: str) -> None:
        """Writes what is queued, then the close frame; the reader then gets the disconnect and the session
        ends as a drop. A peer that reads nothing holds the writes up: after CLOSE_WAIT_S the connection is
        aborted, so it cannot keep the socket, nor its buffers here, for as long as it likes."""
        self._writer.cancel()
        try:
            async with asyncio.timeout(CLOSE_WAIT_S):
                while not self._outbox.empty():
                    await self.websocket.send_text(self._outbox.get_nowait().decode())
                await self.websocket.close(code=code, reason=reason)
        except TimeoutError:
            log.info("aborting %s: its close frame was not taken within %g s", self.connection_id, CLOSE_WAIT_S)
            if abort := self.websocket.scope["extensions"].get(ABORT):
                abort["abort"]()
        except Exception:  # noqa: S110 - the client is gone already
            pass

    def _check_channel_limit(self) -> None:
        if len(self.channels | self.observing) >= self.edge.settings.max_channels_per_connection:
            raise ApiError("limit.channels_per_connection")

    async def _typing_start(self, channel: str, timeout_s: float | None) -> None:
        if channel not in self.channels:
            raise ApiError("channel.not_joined", f"typing in {channel!r} needs a join first")
        at = now_ms()
        # A client may send typing.start on every keystroke; the log gets at most one per second.
        if at - self.typing_written.get(channel, -TYPING_THROTTLE_MS) < TYPING_THROTTLE_MS:
            return
        expires_at = at + self.edge.policy.typing_timeout_ms(channel, timeout_s)
        self.typing_written[channel] = at
        await self._write(self._event(TypingStarted, channel=channel, expires_at=expires_at))

    def _start_pushing(self, channel: str, since: int | None, ref: object) -> None:
        """Subscribe to the channel's frames; answer with what the client misses, or a snapshot."""
        read_model = self.edge.read_model
        missed = read_model.views_since(channel, since) if since is not None else None
        self.edge.fanout.subscribe(channel, self)
        if missed is None:
            self.push(snapshot_frame(read_model.view(channel), ref))
            return
        self.reply({"type": "presence.resumed", "channel": channel, "ref": ref, "since": since,
                    "seq": read_model.view(channel).seq})
        for view in missed:
            self.push(diff_frame(view))

    def _stop_pushing(self, channel: str) -> None:
        if channel not in self.channels and channel not in self.observing:
            self.edge.fanout.unsubscribe(channel, self)

    async def _write_forever(self) -> None:
        while True:
            frame = await self._outbox.get()
            await self.websocket.send_text(frame.decode())

    async def _end(self, clean: bool) -> None:
        self._token.cancel()
        for channel in self.channels | self.observing:
            self.edge.fanout.unsubscribe(channel, self)
        self.edge.watchers.forget(self)
        self.edge.liveness.forget(self.connection_id)
        self.edge.held.release(self.principal.user_id, self.connection_id)
        self._writer.cancel()
        if clean:
            event = self._event(ConnectionClosed)
        elif self._silent_since is not None:  # it timed out here: no reconnect grace, last seen at its last frame
            event = self._event(ConnectionTimedOut, alive_at=self._silent_since)
        else:
            event = self._event(ConnectionDropped, grace_ms=self.edge.settings.grace_ms)
        try:
            await self.edge.log.write(event)
        except ApiError:
            log.warning("%s of %s not written; it will time out", event.type, self.connection_id)
        if self._closing is not None:  # the app returning first would close the transport before the close frame
            await self._closing

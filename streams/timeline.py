"""Timelines: a user's sessions and status intervals, folded from the `Step`s of `streams.replay.Tables`.

Rules this module obeys:
1. Pure: no clock, no I/O, no randomness. Times come only from the events, so the same log gives the
   same timeline, whenever and wherever it is folded.
2. Derived by comparing the user before and after each step, as `streams.core` derives its changes:
   the event only says *why*. A step that changed nothing (a duplicate, a timeout the fold refused,
   a heartbeat) opens and ends nothing.
3. Sessions: one per connection for its whole life (`channel` None), and one per stay of a connection
   in a channel. A session starts when the connection, or the channel on that connection, appears in
   the user's state, and ends (`end`, `end_reason`) when it disappears; `end` is None while it lasts.
   Sessions are what the user's connections did, shown or not: going invisible ends none of them.
4. End reasons, from the event that removed the connection or the channel (`end_reason`):
   `channel.left`, `connection.closed`, `user.forced_offline` -> "leave"; `connection.timed_out` ->
   `TIMEOUT_REASONS`, by who wrote it and whether the connection had dropped: its own edge (the client
   went silent) or the sweeper after a drop (the client did not come back within the grace) ->
   "timeout", the sweeper while the connection was not dropped (its edge stopped vouching for it:
   crashed or cut off) -> "edge_failure"; `user.forgotten` -> "forgotten". A connection's channels end
   with it, for its reason.
   A restarted edge closes what its previous incarnation left open with `connection.closed`, so those
   read as "leave": the log does not say more.
5. Status intervals: what others see of the user, `UserPresence.public_status` ("offline" with no
   live connection or while invisible, "away" while auto-away) with the status text and emoji shown
   while online. An interval opens when the user first appears in the log and whenever what others see
   changes, with the cause of that change (`cause`): "connect" and "disconnect" (a connection brought
   the user from none to some connections, or its last one ended), "user" (`presence.updated` from a
   WebSocket), "rest" (`presence.updated` from a REST call: connection id `rest:{edge id}`), "idle"
   (`user.idled`), "expiry" (`status.expired`), "activity" (any other activity that ended auto-away:
   a frame, a join, a new connection while online), "forgotten" (`user.forgotten`: the service keeps
   nothing of the user from then on; what others see is "offline", and the REST read answers 404).
6. Windows: `Timeline.window(from_ms, to_ms)` keeps the sessions and intervals that overlap
   [from_ms, to_ms) with their true start and end, and sets `clipped` on those not wholly inside it
   (begun before `from_ms`, ended after `to_ms`, or still open).
7. A fold may start after the user's first event (from a snapshot of the tables): the first step's
   `before` then seeds the open sessions (a connection from its `opened_at`; a channel stay from the
   user's `channel_since`, the user's first joining of it, or the connection's opening if later: the
   state keeps no join time per connection) and the interval shown then, whose start is that step's
   time and cause "log_start".
8. Erasure (`user.erased`): the timeline keeps nothing from before it, as every history read omits an
   erased user's past (docs/history.md#erasure); what the user does after it starts a new timeline.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from schemas.events import (
    ChannelLeft,
    ConnectionClosed,
    ConnectionTimedOut,
    Event,
    PresenceUpdated,
    StatusExpired,
    UserErased,
    UserForcedOffline,
    UserForgotten,
    UserIdled,
)
from schemas.state import Connection, UserPresence
from streams.replay import Step

EndReason = Literal["leave", "timeout", "edge_failure", "forgotten"]
Cause = Literal["connect", "disconnect", "user", "rest", "idle", "expiry", "activity", "forgotten", "log_start"]

# The connection id of a REST update (services/rest.py, `update_presence`).
REST_CONNECTION_PREFIX = "rest:"

ENDED_BY: dict[type[Event], EndReason] = {
    ChannelLeft: "leave",
    ConnectionClosed: "leave",
    UserForcedOffline: "leave",  # a clean close of each connection, by a service
    UserForgotten: "forgotten",
}
# `connection.timed_out`: (written by the connection's own edge, the connection had dropped) -> reason.
TIMEOUT_REASONS: dict[tuple[bool, bool], EndReason] = {
    (True, False): "timeout",  # its edge saw the client go silent
    (True, True): "timeout",
    (False, True): "timeout",  # the sweeper: dropped, and not back within the reconnect grace
    (False, False): "edge_failure",  # the sweeper: its edge's lease lapsed (crashed or cut off)
}
CAUSED_BY: dict[type[Event], Cause] = {
    UserIdled: "idle",
    StatusExpired: "expiry",
    UserForgotten: "forgotten",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    connection_id: str
    edge_id: str
    device: str | None
    channel: str | None  # None: the connection's whole life
    start: int
    end: int | None = None  # None: still open at the end of what was folded
    end_reason: EndReason | None = None
    clipped: bool = False  # set by `Timeline.window`: not wholly inside the window


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusInterval:
    status: str  # as others see it
    status_text: str | None
    status_emoji: str | None
    start: int
    cause: Cause  # what opened it
    end: int | None = None
    clipped: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    user_id: str
    sessions: tuple[Session, ...] = ()  # in the order the log opened them
    statuses: tuple[StatusInterval, ...] = ()  # consecutive: each ends where the next starts
    from_ms: int | None = None  # the window, once `window` cut it
    to_ms: int | None = None
    partition: int | None = None  # what it reflects: every record of `partition` of `presence.events` ...
    offset: int | None = None  # ... below this offset (set by the reader)
    erased_at: int | None = None  # the user's latest erasure in what was folded

    def window(self, from_ms: int, to_ms: int) -> Timeline:
        """The sessions and intervals overlapping [from_ms, to_ms), true times kept, `clipped` set."""
        return replace(
            self,
            sessions=tuple(replace(s, clipped=_clipped(s.start, s.end, from_ms, to_ms))
                           for s in self.sessions if _overlaps(s.start, s.end, from_ms, to_ms)),
            statuses=tuple(replace(i, clipped=_clipped(i.start, i.end, from_ms, to_ms))
                           for i in self.statuses if _overlaps(i.start, i.end, from_ms, to_ms)),
            from_ms=from_ms,
            to_ms=to_ms,
        )


def end_reason(event: Event, connection: Connection) -> EndReason:
    """Why `event` ended `connection`'s session or one of its channel stays."""
    if isinstance(event, ConnectionTimedOut):
        return TIMEOUT_REASONS[(event.edge_id == connection.edge_id, connection.dropped_at is not None)]
    return ENDED_BY.get(type(event), "leave")  # no other event removes a connection or a channel


def cause(event: Event, before: UserPresence | None, after: UserPresence | None) -> Cause:
    """Why what others see of the user changed from `before` to `after` at `event`."""
    if isinstance(event, PresenceUpdated):
        return "rest" if event.connection_id.startswith(REST_CONNECTION_PREFIX) else "user"
    if isinstance(event, UserForgotten):
        return "forgotten"
    was, now = before is not None and before.online, after is not None and after.online
    if now and not was:
        return "connect"
    if was and not now:
        return "disconnect"
    return CAUSED_BY.get(type(event), "activity")


# What others see: (known, status, text, emoji); a forgotten user is known no more.
Shown = tuple[bool, str, str | None, str | None]
_FORGOTTEN: Shown = (False, "offline", None, None)


def _shown(state: UserPresence | None) -> Shown:
    if state is None or state.forgotten:
        return _FORGOTTEN
    online = state.shown_online
    return (True, state.public_status, state.status_text if online else None, state.status_emoji if online else None)


class TimelineFold:
    """The projection: `fold` the steps of the user's partition in log order (others' are skipped), then
    `timeline()`."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self._sessions: list[Session] = []
        self._open: dict[tuple[str, str | None], int] = {}  # (connection, channel) -> index in _sessions
        self._statuses: list[StatusInterval] = []
        self._shown: Shown | None = None  # None: nothing folded yet
        self._started = False
        self._erased_at: int | None = None

    def fold(self, step: Step) -> None:
        if step.event.user_id != self.user_id:
            return
        if not self._started:
            self._started = True
            self._seed(step)
        if isinstance(step.event, UserErased):  # rule 8
            self._erased_at = step.event.at
            self._sessions, self._open, self._statuses = [], {}, []
            self._shown = _FORGOTTEN
            return
        if step.after is step.before:
            return
        self._fold_sessions(step)
        shown = _shown(step.after)
        if shown != self._shown:
            self._open_interval(shown, step.event.at, cause(step.event, step.before, step.after))

    def timeline(self) -> Timeline:
        return Timeline(user_id=self.user_id, sessions=tuple(self._sessions), statuses=tuple(self._statuses),
                        erased_at=self._erased_at)

    def _seed(self, step: Step) -> None:
        before = step.before
        if before is None:
            return
        for connection in before.connections:
            self._start(connection, None, connection.opened_at)
            for channel in connection.channels:
                self._start(connection, channel, max(connection.opened_at, before.channel_since.get(channel, 0)))
        self._open_interval(_shown(before), step.event.at, "log_start")

    def _fold_sessions(self, step: Step) -> None:
        at, event = step.event.at, step.event
        was = {c.connection_id: c for c in step.before.connections} if step.before is not None else {}
        now = {c.connection_id: c for c in step.after.connections} if step.after is not None else {}
        for connection_id, connection in was.items():
            stays = now.get(connection_id)
            gone = connection.channels if stays is None else [c for c in connection.channels if c not in stays.channels]
            for channel in gone:
                self._end(connection_id, channel, at, end_reason(event, connection))
            if stays is None:
                self._end(connection_id, None, at, end_reason(event, connection))
        for connection_id, connection in now.items():
            had = was.get(connection_id)
            if had is None:
                self._start(connection, None, connection.opened_at)
            for channel in connection.channels:
                if had is None or channel not in had.channels:
                    self._start(connection, channel, at)

    def _start(self, connection: Connection, channel: str | None, at: int) -> None:
        key = (connection.connection_id, channel)
        if key in self._open:
            return
        self._open[key] = len(self._sessions)
        self._sessions.append(Session(connection_id=connection.connection_id, edge_id=connection.edge_id,
                                      device=connection.device, channel=channel, start=at))

    def _end(self, connection_id: str, channel: str | None, at: int, reason: EndReason) -> None:
        index = self._open.pop((connection_id, channel), None)
        if index is not None:
            self._sessions[index] = replace(self._sessions[index], end=at, end_reason=reason)

    def _open_interval(self, shown: Shown, at: int, why: Cause) -> None:
        if self._statuses and self._statuses[-1].end is None:
            self._statuses[-1] = replace(self._statuses[-1], end=at)
        _, status, text, emoji = shown
        self._statuses.append(StatusInterval(status=status, status_text=text, status_emoji=emoji, start=at,
                                             cause=why))
        self._shown = shown


def timeline_of(user_id: str, steps: Iterable[Step]) -> Timeline:
    fold = TimelineFold(user_id)
    for step in steps:
        fold.fold(step)
    return fold.timeline()


def _overlaps(start: int, end: int | None, from_ms: int, to_ms: int) -> bool:
    return start < to_ms and (end is None or end > from_ms or start >= from_ms)


def _clipped(start: int, end: int | None, from_ms: int, to_ms: int) -> bool:
    return start < from_ms or end is None or end > to_ms

"""A second opinion on presence: the expected state of every user, folded from the event log.

Written apart from `streams.core` (it imports nothing from `streams`), from the rules in
docs/events.md and docs/architecture.md, so that a test can compare what the service published with what
the log says it should have published. It is deliberately plain: mutable dicts and sets, one
`if` per rule, no cleverness. It needs no clock: timeouts and expiries are events in the log.

    expected = fold(events)                       # events in log order (per user order is what counts)
    expected_view(expected["u-1"]) == published_view(latest_user_view_of_u_1)

Rules, as the docs state them:
- An event id applied recently (the latest 64 per user, heartbeats not counted) changes nothing.
- A connection is live until its last heartbeat plus the smallest of its timeout and its channels'
  timeouts, or its drop plus the grace if that is earlier. Sweeper events re-check this at `at`.
- Activity (an open, a join, a leave, typing, an update, a heartbeat's newer `active_at`) ends
  auto-away only if it is later than the user's latest activity; the user goes away at latest
  activity plus `idle_after_ms`, only while its chosen status is `online`.
- Last seen moves with opens, closes, timeouts and activity, but not while the user is invisible.
  A timeout the sweeper judged by the edge's lease names the lease's renewal (`alive_at`): the
  last time the connection was known alive.
- An edge's newest lease in a partition (`edge.leased`, a later `since` takes over) keeps the
  connections it opened since then alive until its `at` plus the larger of their timeout and its
  `ttl_ms`, a dropped one until its drop plus the grace: a timeout before that changes nothing.
  Leases change no user.
- A user is gone (no view; `Expected.gone`, holding only the time as `last_seen`) when erased
  (`user.erased`, at once, whatever its state: it leaves every channel) or forgotten (`user.forgotten`,
  offline since the `last_seen` it names); a gone user forgotten again one retention later is deleted.
  An event that would change nothing on a new user leaves a gone user gone; any other starts it afresh.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.changes import UserView
from schemas.codec import DecodeError, decode
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    EdgeLeased,
    EdgeProbed,
    Event,
    EventBatch,
    Heartbeat,
    PresenceUpdated,
    StatusExpired,
    TypingExpired,
    TypingStarted,
    TypingStopped,
    UserErased,
    UserForgotten,
    UserIdled,
)

# How many event ids per user the processor remembers to drop redeliveries (`recent_event_ids`, a bounded ring).
REMEMBERED_IDS = 64


@dataclass
class Conn:
    device: str | None
    timeout_ms: int
    last_heartbeat: int
    channels: dict[str, int | None] = field(default_factory=dict)  # channel -> its own timeout, if any
    dropped_at: int | None = None
    grace_ms: int | None = None
    edge_id: str = ""
    opened_at: int = 0

    def timeout(self) -> int:
        return min([self.timeout_ms] + [t for t in self.channels.values() if t is not None])

    def deadline(self) -> int:
        deadline = self.last_heartbeat + self.timeout()
        if self.dropped_at is not None and self.grace_ms is not None:
            deadline = min(deadline, self.dropped_at + self.grace_ms)
        return deadline


@dataclass
class Lease:
    """An edge's newest `edge.leased` in the partition being folded."""

    since: int
    at: int
    ttl_ms: int

    def deadline(self, conn: Conn) -> int | None:
        """Until when it keeps `conn` alive (a dropped one: through the grace from its drop); None if
        it does not cover it (a connection of an earlier process of the edge)."""
        if conn.opened_at < self.since:
            return None
        if conn.dropped_at is not None and conn.grace_ms is not None:
            return conn.dropped_at + conn.grace_ms
        return self.at + max(conn.timeout(), self.ttl_ms)


Leases = dict[str, Lease]  # edge id -> its lease in one partition


@dataclass
class Expected:
    """What the log says about one user."""

    user_id: str
    status: str = "online"
    visible: bool = True
    status_metadata: dict[str, Any] = field(default_factory=dict)
    status_text: str | None = None
    status_emoji: str | None = None
    status_expires_at: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    conns: dict[str, Conn] = field(default_factory=dict)  # connection id -> connection, live ones only
    typing: dict[str, int] = field(default_factory=dict)  # channel -> when the indicator expires
    idle_after_ms: int | None = None
    idle: bool = False
    last_active: int | None = None  # the user's latest activity; None while it has no connection
    last_seen: int | None = None
    recent_ids: list[str] = field(default_factory=list)
    gone: bool = False  # erased or forgotten: nothing is published of the user

    def channels(self) -> set[str]:
        return {channel for c in self.conns.values() for channel in c.channels}

    def shown_online(self) -> bool:
        return bool(self.conns) and self.visible

    def idle_at(self) -> int | None:
        if self.idle or self.idle_after_ms is None or self.last_active is None or self.status != "online":
            return None
        return self.last_active + self.idle_after_ms


def fold(events: Iterable[Event]) -> dict[str, Expected]:
    """The events of one partition (or of users whose edges hold no lease), in log order."""
    users: dict[str, Expected] = {}
    leases: Leases = {}
    for e in events:
        take(users, e, leases)
    return users


def take(users: dict[str, Expected], e: Event, leases: Leases) -> None:
    """Fold one event of a partition into `users`, forgetting a user included; `leases` are that
    partition's, as folded so far."""
    if isinstance(e, EdgeProbed):  # a readiness probe: about the processor, no user's state
        return
    if isinstance(e, EdgeLeased):  # an edge's lease: no user's state, but it keeps connections alive
        held = leases.get(e.edge_id)
        if held is None or (e.since, e.at) > (held.since, held.at):
            leases[e.edge_id] = Lease(e.since, e.at, e.ttl_ms)
        return
    if isinstance(e, ConnectionTimedOut):
        user = users.get(e.user_id)
        conn = user.conns.get(e.connection_id) if user is not None else None
        lease = leases.get(conn.edge_id) if conn is not None else None
        kept_until = lease.deadline(conn) if lease is not None and conn is not None else None
        if user is not None and conn is not None and e.edge_id != conn.edge_id and kept_until is not None \
                and e.at < kept_until:
            step(user, e, lambda user, e: None)  # renewed after the sweep: like a heartbeat after it
            return
    user = users.get(e.user_id)
    if isinstance(e, UserForgotten):
        if user is not None and not user.conns and (user.last_seen or 0) == e.last_seen:
            if user.gone:
                del users[e.user_id]  # gone for a retention: nothing kept at all
            else:  # offline since the spell the sweeper saw: no view
                users[e.user_id] = Expected(user_id=e.user_id, last_seen=e.at, gone=True)
        return
    if isinstance(e, UserErased):
        if user is None or user.gone or e.event_id not in user.recent_ids:
            users[e.user_id] = Expected(user_id=e.user_id, last_seen=e.at, gone=True)
        return
    if user is not None and user.gone:
        fresh = Expected(user_id=e.user_id)
        step(fresh, e)
        if replace(fresh, recent_ids=[]) == Expected(user_id=e.user_id):
            return  # a stray event (of a connection it no longer has): still gone
        users[e.user_id] = fresh
        return
    step(users.setdefault(e.user_id, Expected(user_id=e.user_id)), e)


def events_of(records: Iterable[bytes]) -> list[Event]:
    """The events of `presence.events` record values, skipping what the processor skips (undecodable)."""
    events: list[Event] = []
    for value in records:
        try:
            events.extend(decode(value, EventBatch).events)
        except DecodeError:
            continue
    return events


def expected_view(user: Expected) -> dict[str, Any]:
    """The user's latest view on `presence.users`, in the shape of `published_view`."""
    shown = user.shown_online()
    if not shown:
        status = "offline"
    elif user.idle and user.status == "online":
        status = "away"
    else:
        status = user.status
    return {
        "status": status,
        "online": shown,
        "last_seen": user.last_seen or 0,
        "connections": len(user.conns) if shown else 0,
        "devices": tuple(sorted(c.device for c in user.conns.values() if c.device)) if shown else (),
        "metadata": user.metadata,
        "status_metadata": user.status_metadata if shown else {},
        "status_text": user.status_text if shown else None,
        "status_emoji": user.status_emoji if shown else None,
        "status_expires_at": user.status_expires_at if shown else None,
    }


def published_view(view: UserView) -> dict[str, Any]:
    """A `UserView` read from `presence.users`, without what only the service knows (the event id)."""
    return {
        "status": view.status,
        "online": view.online,
        "last_seen": view.last_seen,
        "connections": view.connections,
        "devices": tuple(view.devices),
        "metadata": view.metadata,
        "status_metadata": view.status_metadata,
        "status_text": view.status_text,
        "status_emoji": view.status_emoji,
        "status_expires_at": view.status_expires_at,
    }


def expected_members(users: dict[str, Expected]) -> dict[str, set[str]]:
    """Channel -> the users others see in it (shown online, with a live connection in it)."""
    members: dict[str, set[str]] = {}
    for user in users.values():
        if user.shown_online():
            for channel in user.channels():
                members.setdefault(channel, set()).add(user.user_id)
    return members


def step(user: Expected, e: Event, handler: Any = None) -> None:
    if e.event_id in user.recent_ids:
        return  # a redelivery
    handler = handler or HANDLERS.get(type(e))
    if handler is None:
        return  # an event this model does not know: the processor ignores it too
    handler(user, e)
    # Typing shows only in channels the user is still in.
    present = user.channels()
    user.typing = {c: t for c, t in user.typing.items() if c in present}
    if not isinstance(e, Heartbeat):  # heartbeats are harmless twice: time only moves forward
        user.recent_ids = [*user.recent_ids, e.event_id][-REMEMBERED_IDS:]


def seen(user: Expected, at: int) -> None:
    if user.visible:  # invisible users stay where they were last seen
        user.last_seen = max(user.last_seen or 0, at)


def activity(user: Expected, at: int) -> None:
    """The user did something at `at`: auto-away ends if that is newer than its latest activity."""
    if user.last_active is None or at > user.last_active:
        user.idle = False
    if user.conns:
        user.last_active = max(user.last_active or at, at)


def remove(user: Expected, connection_id: str) -> None:
    del user.conns[connection_id]
    if not user.conns:
        user.last_active = None


def on_opened(user: Expected, e: ConnectionOpened) -> None:
    if e.connection_id in user.conns:
        return
    if e.status is not None and not user.conns:  # a status given at connect counts only for the first
        user.status = e.status
    if e.metadata is not None:
        user.metadata = e.metadata
    user.idle_after_ms = e.idle_after_ms
    seen(user, e.at)
    activity(user, e.at)  # before the connection is added: with none, any activity is new
    user.conns[e.connection_id] = Conn(device=e.device, timeout_ms=e.timeout_ms, last_heartbeat=e.at,
                                       edge_id=e.edge_id, opened_at=e.at)
    user.last_active = max(user.last_active or e.at, e.at)


def on_closed(user: Expected, e: ConnectionClosed) -> None:
    if e.connection_id in user.conns:
        remove(user, e.connection_id)
        seen(user, e.at)


def on_dropped(user: Expected, e: ConnectionDropped) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is not None and conn.dropped_at is None:
        conn.dropped_at, conn.grace_ms = e.at, e.grace_ms


def on_timed_out(user: Expected, e: ConnectionTimedOut) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is None or e.at < conn.deadline():
        return  # gone already, or a heartbeat came after the sweep
    remove(user, e.connection_id)
    # A connection its edge's lease kept was last known alive at that lease's renewal.
    seen(user, max(conn.last_heartbeat, e.alive_at or 0) if conn.dropped_at is None else conn.dropped_at)


def on_heartbeat(user: Expected, e: Heartbeat) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is None:
        return
    conn.last_heartbeat = max(conn.last_heartbeat, e.at)
    if e.active_at is not None:
        activity(user, e.active_at)


def on_joined(user: Expected, e: ChannelJoined) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is None or e.channel in conn.channels:
        return
    conn.channels[e.channel] = e.timeout_ms
    seen(user, e.at)
    activity(user, e.at)


def on_left(user: Expected, e: ChannelLeft) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is None or e.channel not in conn.channels:
        return
    del conn.channels[e.channel]
    seen(user, e.at)
    activity(user, e.at)


def on_updated(user: Expected, e: PresenceUpdated) -> None:
    before = (user.status, user.visible, user.status_metadata, user.status_text, user.status_emoji,
              user.status_expires_at, user.metadata, [c.timeout_ms for c in user.conns.values()])
    was_visible = user.visible
    if e.status_metadata is not None:
        user.status_metadata = e.status_metadata
    elif e.status is not None and e.status != user.status:
        user.status_metadata = {}  # a new status drops the old one's metadata
    if e.status is not None or e.status_text is not None:
        user.status_expires_at = e.expires_at
    if e.status is not None:
        user.status, user.visible = e.status, e.visible
    if e.status_text is not None:
        user.status_text = e.status_text or None  # an empty text clears it
    if e.status_emoji is not None:
        user.status_emoji = e.status_emoji or None
    if e.metadata is not None:
        user.metadata = e.metadata
    if e.timeout_ms is not None:
        for conn in user.conns.values():
            conn.timeout_ms = e.timeout_ms
    after = (user.status, user.visible, user.status_metadata, user.status_text, user.status_emoji,
             user.status_expires_at, user.metadata, [c.timeout_ms for c in user.conns.values()])
    if before == after and not (user.idle and user.conns):  # a no-op, unless it wakes an away user
        return
    if was_visible or user.visible:  # going invisible is the moment the user was last seen
        user.last_seen = max(user.last_seen or 0, e.at)
    activity(user, e.at)


def on_typing_started(user: Expected, e: TypingStarted) -> None:
    conn = user.conns.get(e.connection_id)
    if conn is None or e.channel not in conn.channels or user.typing.get(e.channel, 0) >= e.expires_at:
        return
    user.typing[e.channel] = e.expires_at
    seen(user, e.at)
    activity(user, e.at)


def on_typing_stopped(user: Expected, e: TypingStopped) -> None:
    if e.channel not in user.typing:
        return
    del user.typing[e.channel]
    seen(user, e.at)
    activity(user, e.at)


def on_typing_expired(user: Expected, e: TypingExpired) -> None:
    if e.channel in user.typing and e.at >= user.typing[e.channel]:
        del user.typing[e.channel]


def on_status_expired(user: Expected, e: StatusExpired) -> None:
    if user.status_expires_at is None or e.at < user.status_expires_at:
        return
    user.status, user.visible, user.status_metadata = "online", True, {}
    user.status_text = user.status_emoji = user.status_expires_at = None


def on_idled(user: Expected, e: UserIdled) -> None:
    idle_at = user.idle_at()
    if idle_at is not None and e.at >= idle_at:
        user.idle = True


HANDLERS: dict[type[Event], Any] = {
    ConnectionOpened: on_opened,
    ConnectionClosed: on_closed,
    ConnectionDropped: on_dropped,
    ConnectionTimedOut: on_timed_out,
    Heartbeat: on_heartbeat,
    ChannelJoined: on_joined,
    ChannelLeft: on_left,
    PresenceUpdated: on_updated,
    TypingStarted: on_typing_started,
    TypingStopped: on_typing_stopped,
    TypingExpired: on_typing_expired,
    StatusExpired: on_status_expired,
    UserIdled: on_idled,
}

"""Presence events: the facts written to `presence.events`.

Every event is a past-tense fact stamped by the process that saw it happen (an edge, or the
sweeper for timeouts). Events carry the policy values that decide their outcome (`timeout_ms`,
`grace_ms`), so replaying the log later decides exactly as the live processor did, whatever
the configuration is by then.

One Kafka record on `presence.events` is an `EventBatch`: several events, all of users that
hash to the record's partition, in the order they happened. Batching is what lets a worker
carry thousands of events per second (a Kafka message costs the worker far more than an event).

Events are at version 2 (`EVENT_SCHEMA_VERSION`): version 2 added `service`. Records of version 1
still decode, through the upcasters in schemas/upcasters.py, so a replay reads the whole log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

# Every record family's version, here in one place (docs/events.md#versioning; older versions decode
# through schemas/upcasters.py).
SCHEMA_VERSION = 1  # of every other record (changes, channel states, views, leases, channel snapshots)
EVENT_SCHEMA_VERSION = 2  # of events and event batches
USER_SCHEMA_VERSION = 2  # of user states (`UserPresence`) and the user snapshots that hold them


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type: ClassVar[str]
    event_id: str
    user_id: str
    connection_id: str
    edge_id: str
    at: int  # UTC epoch milliseconds, stamped where the fact was observed
    service: str | None = None  # the service that wrote it on the user's behalf; None: the user or the system
    v: int = EVENT_SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """A device of the user connected; it counts as live until `timeout_ms` after its last heartbeat.

    `status`, when given, is the status the user comes online with; None keeps the stored one.
    """

    type: ClassVar[str] = "connection.opened"
    timeout_ms: int
    status: str | None = None
    device: str | None = None
    metadata: dict[str, Any] | None = None  # set at connect; None keeps the stored metadata
    idle_after_ms: int | None = None  # auto-away after this long without activity; None: never


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The client closed its connection cleanly: the device is gone at once."""

    type: ClassVar[str] = "connection.closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionDropped(Event):
    """The transport broke without a clean close; the device stays present for `grace_ms`."""

    type: ClassVar[str] = "connection.dropped"
    grace_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionTimedOut(Event):
    """Written by the sweeper when a connection's deadline passed; applied only if still overdue at `at`.
    Also written by the connection's own edge when its client sent nothing for longer than its timeout.

    `alive_at` is when the connection was last known alive, when that is later than its last heartbeat:
    the renewal of its edge's lease (`edge.leased`) that kept it, or, from its edge, its last frame.
    The user's `last_seen` becomes that time.
    """

    type: ClassVar[str] = "connection.timed_out"
    alive_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Event):
    """The connection showed life at `at`. Edges write these coalesced, once per interval, for the
    connections whose client did something since the last one; the edge's lease (`edge.leased`)
    keeps the others alive.

    `active_at` is the last time the client did something other than heartbeating (for auto-away).
    """

    type: ClassVar[str] = "heartbeat"
    active_at: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelJoined(Event):
    """The connection joined a channel. `timeout_ms` is the channel's own presence timeout, if any."""

    type: ClassVar[str] = "channel.joined"
    channel: str
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeft(Event):
    type: ClassVar[str] = "channel.left"
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceUpdated(Event):
    """The user set its status, status text, metadata or timeout. Fields left as None are unchanged.

    Policy is stamped by the edge from its configuration: `visible` (false for states that show the
    user as offline, like invisible), `expires_at` (when the status and its text revert), and
    `timeout_ms` (a per-user or per-state presence timeout, already clamped to the server bounds).
    An empty `status_text` or `status_emoji` clears it.
    """

    type: ClassVar[str] = "presence.updated"
    status: str | None = None
    status_metadata: dict[str, Any] | None = None  # validated by the edge against the state's schema
    metadata: dict[str, Any] | None = None
    status_text: str | None = None
    status_emoji: str | None = None
    expires_at: int | None = None
    visible: bool = True
    timeout_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingStarted(Event):
    """The user is typing in a channel it is present in, until `expires_at` unless renewed or stopped."""

    type: ClassVar[str] = "typing.started"
    channel: str
    expires_at: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingStopped(Event):
    type: ClassVar[str] = "typing.stopped"
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TypingExpired(Event):
    """Written by the sweeper; applied only if the typing indicator is still past its expiry at `at`."""

    type: ClassVar[str] = "typing.expired"
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusExpired(Event):
    """Written by the sweeper: the status set with `expires_at` reverts to online, its text is cleared."""

    type: ClassVar[str] = "status.expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserIdled(Event):
    """Written by the sweeper: no activity on any connection for the stamped idle period (auto-away)."""

    type: ClassVar[str] = "user.idled"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserForgotten(Event):
    """Written by the sweeper: the user has had no connection since `last_seen`, longer than the
    retention; the processor forgets the user (tombstones), unless the user came back meanwhile."""

    type: ClassVar[str] = "user.forgotten"
    last_seen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserErased(Event):
    """Written by an edge when the user asked to be erased (`DELETE /realtime/users/{id}/presence`): the
    processor closes every connection of the user, keeps nothing of the user but a marker with the log
    position, writes tombstones and records the erasure on `presence.erasures`; history reads then omit
    the user up to `at`."""

    type: ClassVar[str] = "user.erased"


@dataclass(frozen=True, slots=True, kw_only=True)
class UserForcedOffline(Event):
    """Written by an edge when a service forced the user offline
    (`POST /realtime/users/{id}/presence/offline`): every connection of the user ends at once, as if
    each closed cleanly; edges close the user's sockets with `connection.forced_offline`, since the
    user's state names the connections it ended (`UserPresence.forced_offline_connections`)."""

    type: ClassVar[str] = "user.forced_offline"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeProbed(Event):
    """An edge asks whether the processor folds this partition end to end (services/readiness.py).

    It changes no state: the user stage forwards it to the same partition of
    `presence.channel-changes` (`probe.forwarded`), and the channel stage answers on
    `presence.probes`. `user_id` is a reserved id that only places it in its partition.
    """

    type: ClassVar[str] = "edge.probed"


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLeased(Event):
    """An edge vouches, as of `at`, for every connection it holds in this partition (services/liveness.py).

    Written into every partition once per liveness interval, instead of a heartbeat per idle
    connection: the sweeper counts a connection of this edge opened at or after `since` (the start
    of the edge process that wrote it) as live until `at` plus its timeout, or plus `ttl_ms` if that
    is longer (the edge renews well within it). A connection that goes silent on a live edge is
    closed by the edge itself. It changes no user's state; `user_id` is the reserved id of the
    partition, as for probes.
    """

    type: ClassVar[str] = "edge.leased"
    since: int
    ttl_ms: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        ConnectionOpened,
        ConnectionClosed,
        ConnectionDropped,
        ConnectionTimedOut,
        Heartbeat,
        ChannelJoined,
        ChannelLeft,
        PresenceUpdated,
        TypingStarted,
        TypingStopped,
        TypingExpired,
        StatusExpired,
        UserIdled,
        UserForgotten,
        UserErased,
        UserForcedOffline,
        EdgeProbed,
        EdgeLeased,
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBatch:
    """One record on `presence.events`: events of users that share the record's partition."""

    events: tuple[Event, ...] = field(default_factory=tuple)
    v: int = EVENT_SCHEMA_VERSION

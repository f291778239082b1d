"""Table values: the per-user and per-channel state the processor keeps.

These are the values of the processor's changelog topics (`presence-users-changelog`,
`presence-channels-changelog`, compacted, keyed by user id and channel id), so they are part of
the contract: an analyst can read a user's current state straight from the changelog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.changes import Member
from schemas.events import SCHEMA_VERSION, USER_SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    connection_id: str
    edge_id: str
    opened_at: int
    last_heartbeat: int
    timeout_ms: int
    channels: tuple[str, ...] = ()
    device: str | None = None
    dropped_at: int | None = None
    grace_ms: int | None = None
    last_active: int = 0  # last activity other than heartbeats, for auto-away
    channel_timeouts: dict[str, int] = field(default_factory=dict)  # channels with their own timeout

    @property
    def timeout_in_force_ms(self) -> int:
        """Its own timeout, or the shortest of the channels it joined with one of their own."""
        return min((self.timeout_ms, *self.channel_timeouts.values()))

    @property
    def deadline(self) -> int:
        """When the connection stops counting as live unless a heartbeat moves it."""
        deadline = self.last_heartbeat + self.timeout_in_force_ms
        if self.dropped_at is not None and self.grace_ms is not None:
            deadline = min(deadline, self.dropped_at + self.grace_ms)
        return deadline


@dataclass(frozen=True, slots=True, kw_only=True)
class UserPresence:
    user_id: str
    status: str = "online"  # the status the user chose; shown only while a connection is live
    visible: bool = True  # false while the chosen status shows the user as offline (invisible)
    status_metadata: dict[str, Any] = field(default_factory=dict)
    status_text: str | None = None
    status_emoji: str | None = None
    status_expires_at: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    connections: tuple[Connection, ...] = ()
    channel_since: dict[str, int] = field(default_factory=dict)
    typing: dict[str, int] = field(default_factory=dict)  # channel -> when the indicator expires
    idle_after_ms: int | None = None
    idle: bool = False
    last_seen: int | None = None
    recent_event_ids: tuple[str, ...] = ()
    # The connections the latest `user.forced_offline` that ended any ended (core rule 8): an edge that
    # no longer sees one of its connections held tells a forced end from a timeout by it.
    forced_offline_connections: tuple[str, ...] = ()
    applied_offset: int = -1  # the `presence.events` record whose event was applied last (-1: none) ...
    applied_index: int = -1  # ... and that event's place in the record's batch
    # Forgotten: no view, nothing but `last_seen` (the time of the forget) and the log position, kept
    # until the sweeper forgets it again one retention later, so a redo from before the forget skips.
    forgotten: bool = False
    v: int = USER_SCHEMA_VERSION

    @property
    def online(self) -> bool:
        return bool(self.connections)

    @property
    def shown_online(self) -> bool:
        """Online as everyone else sees it: invisible users appear offline."""
        return self.online and self.visible

    @property
    def public_status(self) -> str:
        if not self.shown_online:
            return "offline"
        return "away" if self.idle and self.status == "online" else self.status


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLease:
    """The newest `edge.leased` of one edge in one partition: a value of the `leases` table."""

    edge_id: str
    since: int  # the start of the edge process that renewed it: older connections are not covered
    at: int  # the renewal: covered connections are live until this plus their timeout, or the ttl if longer
    ttl_ms: int
    v: int = SCHEMA_VERSION

    def covers(self, connection: Connection) -> bool:
        return connection.edge_id == self.edge_id and connection.opened_at >= self.since


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedSource:
    """The last change of one user a channel applied: where its event is in the log, and its time."""

    source: tuple[int, ...]  # `Change.source`
    at: int  # the change's `at`, to forget it once its user has been gone long enough


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelState:
    channel: str
    seq: int = 0
    members: tuple[Member, ...] = ()
    typing: tuple[str, ...] = ()  # user ids, sorted
    # Per user, the `source` of the last change of theirs applied, kept a while after they leave:
    # a redo of the user stage writes a change again at a later offset, possibly long after.
    applied_sources: dict[str, AppliedSource] = field(default_factory=dict)
    changed_at: int = 0  # `at` of the last effective change (how long an empty channel has been empty)
    applied_offset: int = -1  # the `presence.channel-changes` record applied last (-1: none)
    v: int = SCHEMA_VERSION

"""Change records: what the processor derived from events.

`presence.changes` (keyed by user id) holds every user-level transition. The processor also routes
the channel-level ones (`member.*`) through `presence.channel-changes`, keyed by channel, to the
channel stage, which folds them into channel views and publishes `ChannelView` records on
`presence.channels`.

Change ids are derived from the id of the event that caused them, and `source` is where that event
is in the log, so a replay or a redelivery produces the same ids and sources: consumers drop
duplicates by them. A user's events are all in one partition, so its changes' sources only grow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from schemas.events import SCHEMA_VERSION

OfflineReason = Literal["leave", "timeout"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    type: ClassVar[str]
    change_id: str
    user_id: str
    at: int
    # (offset in `presence.events`, place in that record's batch, place among the event's changes);
    # None for changes no event caused (`channel.expired`) or made outside the processor.
    source: tuple[int, ...] | None = None
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCameOnline(Change):
    type: ClassVar[str] = "user.online"
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserWentOffline(Change):
    type: ClassVar[str] = "user.offline"
    reason: OfflineReason
    last_seen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserStatusChanged(Change):
    type: ClassVar[str] = "user.status_changed"
    status: str
    previous: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A user as seen by the members of a channel."""

    user_id: str
    status: str
    joined_at: int
    last_seen: int
    connections: int
    metadata: dict[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()  # the device names its connections gave, sorted, for per-device detail
    status_metadata: dict[str, Any] = field(default_factory=dict)
    status_text: str | None = None
    status_emoji: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberJoined(Change):
    type: ClassVar[str] = "member.joined"
    channel: str
    member: Member


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberUpdated(Change):
    type: ClassVar[str] = "member.updated"
    channel: str
    member: Member


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberLeft(Change):
    type: ClassVar[str] = "member.left"
    channel: str
    reason: OfflineReason
    last_seen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MemberTyping(Change):
    """The user started (`typing` true) or stopped typing in the channel."""

    type: ClassVar[str] = "member.typing"
    channel: str
    typing: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelExpired(Change):
    """The channel has had no member since `empty_since`: the channel stage forgets it.

    Written to `presence.channel-changes` by the processor's sweeper, so a replay forgets the
    channel at the same point of the log. No user caused it: `user_id` is empty.
    """

    type: ClassVar[str] = "channel.expired"
    channel: str
    empty_since: int  # `changed_at` of the state the sweeper saw; a later change makes this a no-op


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeForwarded(Change):
    """An edge's `edge.probed`, forwarded by the user stage to the channel stage (same partition
    number), which answers it on `presence.probes`. Not a presence change: never on `presence.changes`."""

    type: ClassVar[str] = "probe.forwarded"
    edge_id: str
    events_partition: int


@dataclass(frozen=True, slots=True, kw_only=True)
class UserView:
    """What anyone may see of a user: one record per change on `presence.users` (compacted, by user id)."""

    user_id: str
    status: str
    online: bool
    last_seen: int
    connections: int
    devices: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    status_metadata: dict[str, Any] = field(default_factory=dict)
    status_text: str | None = None
    status_emoji: str | None = None
    status_expires_at: int | None = None
    event_id: str = ""  # the event that produced this view (read-your-writes waits for it)
    v: int = SCHEMA_VERSION


MemberChange = MemberJoined | MemberUpdated | MemberLeft | MemberTyping
# What the channel stage folds; `presence.channel-changes` also carries ProbeForwarded, which it only answers.
ChannelChange = MemberChange | ChannelExpired

CHANGE_TYPES: dict[str, type[Change]] = {
    cls.type: cls
    for cls in (
        UserCameOnline, UserWentOffline, UserStatusChanged, MemberJoined, MemberUpdated, MemberLeft, MemberTyping,
        ChannelExpired, ProbeForwarded,
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Departure:
    user_id: str
    reason: OfflineReason
    last_seen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelView:
    """One record on `presence.channels` (compacted, keyed by channel).

    `members` is the full membership after this step, so the latest record of a channel is its
    snapshot; `joins`, `leaves` and `updates` are the diff from the view with `seq - 1`.
    """

    channel: str
    seq: int
    at: int
    members: tuple[Member, ...]
    joins: tuple[Member, ...] = ()
    leaves: tuple[Departure, ...] = ()
    updates: tuple[Member, ...] = ()
    typing: tuple[str, ...] = ()  # everyone typing after this step (replace semantics)
    v: int = SCHEMA_VERSION

"""Typed records of what the service sends (docs/api.md), and the changes the client reports.

Records are built from frames with `from_json`, which reads the documented fields and ignores
others, so a newer server that adds fields does not break an older client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Member:
    """A user as the members of a channel see them."""

    user_id: str
    status: str
    status_text: str | None = None
    status_emoji: str | None = None
    connections: int = 1
    devices: tuple[str, ...] = ()
    joined_at: int = 0
    last_seen: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    status_metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Member:
        return cls(
            user_id=body["user_id"], status=body["status"], status_text=body.get("status_text"),
            status_emoji=body.get("status_emoji"), connections=body.get("connections", 1),
            devices=tuple(body.get("devices", ())), joined_at=body.get("joined_at", 0),
            last_seen=body.get("last_seen", 0), metadata=body.get("metadata") or {},
            status_metadata=body.get("status_metadata") or {},
        )


@dataclass(frozen=True, slots=True)
class Departure:
    user_id: str
    reason: str  # "leave" or "timeout"
    last_seen: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Departure:
        return cls(user_id=body["user_id"], reason=body["reason"], last_seen=body["last_seen"])


@dataclass(frozen=True, slots=True)
class UserPresence:
    """One user as the reader may see it (REST user view, bulk query, watch)."""

    user_id: str
    status: str
    active: bool
    last_seen: int
    connections: int = 0
    devices: tuple[str, ...] = ()
    status_text: str | None = None
    status_emoji: str | None = None
    status_metadata: dict[str, Any] = field(default_factory=dict)
    status_expires_at: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    channels: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> UserPresence:
        return cls(
            user_id=body["user_id"], status=body["status"], active=body["active"], last_seen=body["last_seen"],
            connections=body.get("connections", 0), devices=tuple(body.get("devices", ())),
            status_text=body.get("status_text"), status_emoji=body.get("status_emoji"),
            status_metadata=body.get("status_metadata") or {}, status_expires_at=body.get("status_expires_at"),
            metadata=body.get("metadata") or {}, channels=tuple(body.get("channels", ())),
        )


@dataclass(frozen=True, slots=True)
class Welcome:
    connection_id: str
    user_id: str
    edge_id: str
    heartbeat_s: float
    timeout_s: float
    typing_timeout_s: float
    token_expires_at: int | None = None
    service: str | None = None  # the service key's name on a service's socket (then `user_id` is "")

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Welcome:
        return cls(
            connection_id=body["connection_id"], user_id=body["user_id"], edge_id=body["edge_id"],
            heartbeat_s=body["heartbeat_s"], timeout_s=body["timeout_s"], typing_timeout_s=body["typing_timeout_s"],
            token_expires_at=body.get("token_expires_at"), service=body.get("service"),
        )


@dataclass(frozen=True, slots=True)
class QueryResult:
    users: dict[str, UserPresence]
    not_found: tuple[str, ...]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> QueryResult:
        users = (UserPresence.from_json(u) for u in body["users"])
        return cls(users={u.user_id: u for u in users}, not_found=tuple(body.get("not_found", ())))


@dataclass(frozen=True, slots=True)
class ChannelPage:
    """A REST read of a channel's presence: one page of its members (by user id), or every page's members as
    `ServiceClient.channel` answers them (then `next_cursor` is None)."""

    channel: str
    seq: int
    occupancy: int
    typing: frozenset[str]
    members: dict[str, Member]
    next_cursor: str | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ChannelPage:
        members = (Member.from_json(m) for m in body.get("members", ()))
        return cls(channel=body["channel"], seq=body["seq"], occupancy=body["occupancy"],
                   typing=frozenset(body.get("typing", ())), members={m.user_id: m for m in members},
                   next_cursor=body.get("next_cursor"))


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    """A channel with members, as `GET /realtime/channels` lists it."""

    channel: str
    occupancy: int
    seq: int
    typing: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ChannelSummary:
        return cls(channel=body["channel"], occupancy=body["occupancy"], seq=body["seq"],
                   typing=frozenset(body.get("typing", ())))


@dataclass(frozen=True, slots=True)
class UserGone:
    """A watched user the reader was shown is no longer readable (no shared channel any more, erased,
    forgotten); it comes back as a `UserPresence` if it becomes readable again."""

    user_id: str


UserChange = UserPresence | UserGone


# Changes of a channel view, in the order they were applied.


@dataclass(frozen=True, slots=True)
class MemberJoined:
    channel: str
    seq: int
    member: Member


@dataclass(frozen=True, slots=True)
class MemberLeft:
    channel: str
    seq: int
    departure: Departure


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    channel: str
    seq: int
    member: Member
    previous: Member | None


@dataclass(frozen=True, slots=True)
class TypingChanged:
    channel: str
    seq: int
    typing: frozenset[str]
    started: frozenset[str]
    stopped: frozenset[str]


@dataclass(frozen=True, slots=True)
class Resynced:
    """The view was replaced by a snapshot (after a gap, or a reconnect the edge could not resume):
    read `members` again rather than patching from the changes before it."""

    channel: str
    seq: int
    members: dict[str, Member]


@dataclass(frozen=True, slots=True)
class Resumed:
    """After a reconnect the edge resumed the view held at `since`: the missed changes follow, up to `seq`."""

    channel: str
    since: int
    seq: int


ChannelChange = MemberJoined | MemberLeft | MemberUpdated | TypingChanged | Resynced | Resumed

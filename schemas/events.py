"""Presence events: the facts written to `presence.events`.

Every event is a past-tense fact stamped by the process that saw it happen (an edge, or the
sweeper for timeouts). Events carry the policy values that decide their outcome (`timeout_ms`,
`grace_ms`), so replaying the log later decides exactly as the live processor did, whatever
the configuration is by then.

One Kafka record on `presence.events` is an `EventBatch`: several events, all of users that
hash to the record's partition, in the order they happened. Batching is what lets a worker
carry thousands of events per second (a Kafka message costs the worker far more than an event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    type: ClassVar[str]
    event_id: str
    user_id: str
    connection_id: str
    edge_id: str
    at: int  # UTC epoch milliseconds, stamped where the fact was observed
    v: int = SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """A device of the user connected; it counts as live until `timeout_ms` after its last heartbeat.

    `status`, when given, is the status the user comes online with; None keeps the stored one.
    """

    type: ClassVar[str] = "connection.opened"
    timeout_ms: int
    status: str | None = None
    device: str | None = None


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
    """Written by the sweeper when a connection's deadline passed; applied only if still overdue at `at`."""

    type: ClassVar[str] = "connection.timed_out"


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat(Event):
    """The connection showed life at `at`. Edges write these coalesced, once per interval."""

    type: ClassVar[str] = "heartbeat"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelJoined(Event):
    type: ClassVar[str] = "channel.joined"
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelLeft(Event):
    type: ClassVar[str] = "channel.left"
    channel: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PresenceUpdated(Event):
    """The user set its status and/or metadata. Fields left as None are unchanged."""

    type: ClassVar[str] = "presence.updated"
    status: str | None = None
    metadata: dict[str, Any] | None = None


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
    )
}


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBatch:
    """One record on `presence.events`: events of users that share the record's partition."""

    events: tuple[Event, ...] = field(default_factory=tuple)
    v: int = SCHEMA_VERSION

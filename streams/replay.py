"""Replay: the presence tables rebuilt from `presence.events` through the pure cores, outside the processor.

The same folds as the live stages (`streams.core.apply_at` per event, each at its log position, with
the edges' leases of its partition; `streams.channels.apply_member_change` per member change), so a
replay of the log the live worker has read holds the same users and the same channel members. What
a replay cannot reproduce is left out of the state hash: channel `seq` numbers and positions (they
follow the order the channel stage read the repartition topic in), empty channels not yet expired
(expiry is the sweeper's change, not an event), leases (an edge's liveness, not presence), and a
member's `last_seen` (see `state_hash`). A replay may start from a users snapshot
(`Tables.from_snapshot`) and the log after its position.

`Reprojection` folds the same log under another `Policy`: the timeouts, grace, idle rule and typing
expiry the edges stamped on events are replaced, the sweeper's expiry events in the log are dropped,
and the expiries the new policy makes due are generated from the events' own times instead. Its
changes leave out those of a user it saw erased (`user.erased`), up to the erasure, as every history
read does (docs/history.md#erasure); the tables need nothing for that: the core keeps no data of the user.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import orjson

from schemas.changes import Change, ChannelChange, Member, MemberJoined, MemberLeft, MemberTyping, MemberUpdated
from schemas.codec import to_builtins
from schemas.events import (
    ChannelJoined,
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    EdgeLeased,
    Event,
    EventBatch,
    StatusExpired,
    TypingExpired,
    TypingStarted,
    UserErased,
    UserForgotten,
    UserIdled,
)
from schemas.state import ChannelState, EdgeLease, UserPresence
from streams.channels import apply_member_change_at
from streams.core import LeaseOf, apply, apply_at, due_events, memberships, next_due_at, renewed

MEMBER_CHANGES = (MemberJoined, MemberUpdated, MemberLeft, MemberTyping)


@dataclass(frozen=True, slots=True)
class Step:
    """One event folded: where it is in the log, the user before and after, and the changes it made."""

    partition: int
    offset: int
    index: int
    event: Event
    before: UserPresence | None
    after: UserPresence | None
    changes: tuple[Change, ...]


@dataclass
class Tables:
    """The processor's tables as a replay holds them: users by id, leases by (edge, partition), channels by id."""

    users: dict[str, UserPresence] = field(default_factory=dict)
    leases: dict[tuple[str, int], EdgeLease] = field(default_factory=dict)
    channels: dict[str, ChannelState] = field(default_factory=dict)
    changes_folded: int = 0  # stands in for the repartition topic's offsets: only its growth matters
    # False: users and leases only, no changes derived (most of the cost of a fold); `rebuild_channels`
    # then makes the channels from what the users show, as from a users snapshot.
    announce: bool = True

    def lease_of(self, partition: int) -> LeaseOf:
        leases = self.leases
        return lambda edge_id: leases.get((edge_id, partition))

    def fold(self, partition: int, offset: int, batch: EventBatch) -> list[Step]:
        steps = []
        lease_of = self.lease_of(partition)
        for index, event in enumerate(batch.events):
            if isinstance(event, EdgeLeased):
                key = (event.edge_id, partition)
                self.leases[key] = renewed(self.leases.get(key), event)
                continue
            steps.append(self.fold_event(partition, offset, index, event, lease_of))
        return steps

    def fold_event(self, partition: int, offset: int, index: int, event: Event, lease_of: LeaseOf) -> Step:
        """`offset` -1: an event not in the log (a re-projection's expiry), applied without a position."""
        before = self.users.get(event.user_id)
        if offset < 0:
            after, changes = apply(before, event, lease_of, self.announce)
        else:
            after, changes = apply_at(before, event, offset, index, lease_of, self.announce)
        if after is not before:
            if after is None:
                del self.users[event.user_id]
            else:
                self.users[event.user_id] = after
            for change in changes:
                if isinstance(change, MEMBER_CHANGES):
                    self.fold_channel_change(change)
        return Step(partition, offset, index, event, before, after, tuple(changes))

    def fold_channel_change(self, change: ChannelChange) -> None:
        self.changes_folded += 1
        state, _ = apply_member_change_at(self.channels.get(change.channel), change, self.changes_folded)
        if state is None:
            self.channels.pop(change.channel, None)
        else:
            self.channels[change.channel] = state


    @classmethod
    def from_snapshot(cls, users: Iterable[UserPresence], leases: Iterable[tuple[int, EdgeLease]]) -> Tables:
        """Tables as a users snapshot holds them; the channels are what the users show (see `state_hash`)."""
        tables = cls(users={u.user_id: u for u in users},
                     leases={(lease.edge_id, partition): lease for partition, lease in leases})
        tables.rebuild_channels()
        return tables

    def rebuild_channels(self) -> None:
        """The channels as the users show themselves in them (see `state_hash` for what differs)."""
        members: dict[str, dict[str, Member]] = {}
        typing: dict[str, set[str]] = {}
        for state in self.users.values():
            shown, typing_in = memberships(state)
            for channel, shown_member in shown.items():
                members.setdefault(channel, {})[state.user_id] = shown_member
            for channel in typing_in:
                typing.setdefault(channel, set()).add(state.user_id)
        self.channels = {
            channel: ChannelState(channel=channel, members=tuple(m for _, m in sorted(by_user.items())),
                                  typing=tuple(sorted(typing.get(channel, ()))))
            for channel, by_user in members.items()
        }


def state_hash(users: Iterable[UserPresence], channels: Iterable[ChannelState]) -> str:
    """A digest of presence: every user's state, and every channel's members and typing (see the module doc).

    A member's `last_seen` is left out: a channel shows it as of the user's last change there, while
    the user's state moves it with every activity, so channels rebuilt from users (a replay from a
    users snapshot) show the later one.
    """
    digest = hashlib.sha256()
    for user in sorted(users, key=lambda u: u.user_id):
        digest.update(_canonical(user))
    for channel in sorted(channels, key=lambda c: c.channel):
        if channel.members:
            members = [replace(m, last_seen=0) for m in channel.members]
            digest.update(_canonical({"channel": channel.channel, "members": members, "typing": channel.typing}))
    return digest.hexdigest()


def _canonical(value: Any) -> bytes:
    return orjson.dumps(to_builtins(value), option=orjson.OPT_SORT_KEYS) + b"\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """Values a re-projection stamps on events in place of the edges' (None keeps what the log says)."""

    timeout_ms: int | None = None  # a connection's presence timeout (`connection.opened`)
    channel_timeout_ms: int | None = None  # a channel's own timeout (`channel.joined`)
    grace_ms: int | None = None  # reconnect grace after a drop (`connection.dropped`)
    idle_after_ms: int | None = None  # auto-away after this long without activity (`connection.opened`)
    typing_ms: int | None = None  # a typing indicator's life (`typing.started`)
    user_retention_ms: int | None = 30 * 24 * 3600 * 1000  # forget users offline this long (None: never)

    @classmethod
    def from_json(cls, raw: bytes) -> Policy:
        given = orjson.loads(raw)
        known = {f.name for f in fields(cls)}
        if not isinstance(given, dict) or not set(given) <= known:
            unknown = sorted(set(given) - known) if isinstance(given, dict) else given
            raise ValueError(f"a policy is an object with keys among {sorted(known)}; unexpected: {unknown}")
        if not all(v is None or (isinstance(v, int) and v > 0) for v in given.values()):
            raise ValueError("policy values are positive integers (milliseconds) or null")
        return cls(**given)

    def stamp(self, event: Event) -> Event:
        if isinstance(event, ConnectionOpened):
            return replace(event, timeout_ms=self.timeout_ms or event.timeout_ms,
                           idle_after_ms=self.idle_after_ms or event.idle_after_ms)
        if isinstance(event, ChannelJoined) and event.timeout_ms is not None and self.channel_timeout_ms:
            return replace(event, timeout_ms=self.channel_timeout_ms)
        if isinstance(event, ConnectionDropped) and self.grace_ms:
            return replace(event, grace_ms=self.grace_ms)
        if isinstance(event, TypingStarted) and self.typing_ms:
            return replace(event, expires_at=event.at + self.typing_ms)
        return event


# Written by the processor's sweeper from the live policy: a re-projection makes its own.
SWEEPER_EVENTS = (TypingExpired, StatusExpired, UserIdled, UserForgotten)
REPROJECTION_SWEEPER = "reprojection"


class Reprojection:
    """The log folded under `policy`: `fold` each record in log order per partition, then `finish`."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tables = Tables()
        self.changes: list[Change] = []
        self._due: dict[int, list[tuple[int, str]]] = {}  # per partition, a heap of (when, user id) ...
        self._next: dict[str, int] = {}  # ... of which only each user's earliest counts
        self._silent: dict[str, list[ConnectionTimedOut]] = {}  # by user: edge timeouts the new policy defers
        self._until = 0

    def fold(self, partition: int, offset: int, batch: EventBatch) -> None:
        tables, lease_of = self.tables, self.tables.lease_of(partition)
        for index, event in enumerate(batch.events):
            self._until = max(self._until, event.at)
            self._expire(partition, event.at)
            if isinstance(event, EdgeLeased):
                tables.fold(partition, offset, EventBatch(events=(event,)))
                continue
            if isinstance(event, SWEEPER_EVENTS) or (isinstance(event, ConnectionTimedOut)
                                                     and not self._by_own_edge(event)):
                continue
            step = tables.fold_event(partition, offset, index, self.policy.stamp(event), lease_of)
            if isinstance(event, ConnectionTimedOut) and _holds(step.after, event.connection_id):
                self._defer(partition, event)
            self._take(step)
            if isinstance(event, UserErased):  # the user's changes so far are all at or before it
                self.changes = [c for c in self.changes if c.user_id != event.user_id]

    def finish(self) -> Tables:
        """Expiries due by the last event's time applied: the state as of the end of the log."""
        for partition in self._due:
            self._expire(partition, self._until)
        return self.tables

    def _by_own_edge(self, event: ConnectionTimedOut) -> bool:
        """A timeout the connection's own edge wrote says its client went silent after `alive_at`: a fact."""
        state = self.tables.users.get(event.user_id)
        return state is not None and any(c.connection_id == event.connection_id and c.edge_id == event.edge_id
                                         for c in state.connections)

    def _defer(self, partition: int, event: ConnectionTimedOut) -> None:  # the new timeout refused it
        """The client's silence under a longer timeout: its edge would have closed it that much later."""
        state = self.tables.users[event.user_id]
        connection = next(c for c in state.connections if c.connection_id == event.connection_id)
        when = max(event.alive_at or event.at, connection.last_heartbeat) + connection.timeout_in_force_ms
        deferred = replace(event, event_id=f"{event.event_id}:deferred", at=when)
        self._silent.setdefault(event.user_id, []).append(deferred)
        self._schedule(partition, event.user_id, when)

    def _take(self, step: Step) -> None:
        self.changes.extend(step.changes)
        if step.after is not None and step.after is not step.before:
            when = next_due_at(step.after, self.policy.user_retention_ms, self.tables.lease_of(step.partition))
            if when is not None:
                self._schedule(step.partition, step.after.user_id, when)

    def _schedule(self, partition: int, user_id: str, when: int) -> None:
        if when < self._next.get(user_id, when + 1):
            self._next[user_id] = when
            heapq.heappush(self._due.setdefault(partition, []), (when, user_id))

    def _expire(self, partition: int, now: int) -> None:
        due, lease_of = self._due.get(partition), self.tables.lease_of(partition)
        while due and due[0][0] <= now:
            when, user_id = heapq.heappop(due)
            if self._next.get(user_id) != when:  # an earlier one replaced it, and was taken
                continue
            del self._next[user_id]
            state = self.tables.users.get(user_id)
            if state is None:
                continue
            silent = self._silent.pop(user_id, [])
            for event in [e for e in silent if e.at <= when] + due_events(
                    state, when, REPROJECTION_SWEEPER, self.policy.user_retention_ms, lease_of):
                self._take(self.tables.fold_event(partition, -1, -1, event, lease_of))
            state = self.tables.users.get(user_id)
            if still := [e for e in silent if e.at > when]:
                self._silent[user_id] = still
            later = min((e.at for e in still), default=None)
            if state is not None and (swept := next_due_at(state, self.policy.user_retention_ms, lease_of)):
                later = swept if later is None else min(later, swept)
            if later is not None:  # never at or before `when` again: what was due then was applied or refused
                self._schedule(partition, user_id, max(later, when + 1))


def _holds(state: UserPresence | None, connection_id: str) -> bool:
    return state is not None and any(c.connection_id == connection_id for c in state.connections)

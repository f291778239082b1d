"""The pure presence core: `apply(state, event) -> (state, changes)`.

Rules this module obeys:
1. No clock, no I/O, no randomness: time comes only from events, so a replay is exact.
2. Never raises on a well-formed event: an event that does not fit the state (a heartbeat of an
   unknown connection, a second close) changes nothing, so one odd record cannot stop a partition.
3. Idempotent: an event id seen recently changes nothing; heartbeats only move time forward.
4. Changes are derived by comparing what subscribers could see before and after the event, so
   each transition below only edits state and never decides what to announce.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace

from schemas.changes import (
    Change,
    Member,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    OfflineReason,
    UserCameOnline,
    UserStatusChanged,
    UserWentOffline,
)
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    Event,
    Heartbeat,
    PresenceUpdated,
)
from schemas.state import Connection, UserPresence

# Enough to absorb what a worker redoes after a rebalance (events since its last commit).
RECENT_EVENT_IDS = 64


def apply(state: UserPresence | None, event: Event) -> tuple[UserPresence, list[Change]]:
    state = state or UserPresence(user_id=event.user_id)
    if event.event_id in state.recent_event_ids:
        return state, []
    transition = _TRANSITIONS.get(type(event))
    if transition is None:
        return state, []
    after = transition(state, event)
    if isinstance(event, Heartbeat):  # idempotent by itself: it only moves time forward
        return after, []
    # Remembered even when it changed nothing: redone after a rebalance, on a state that has
    # moved on, it could take effect where it did not the first time.
    after = replace(after, recent_event_ids=(*after.recent_event_ids, event.event_id)[-RECENT_EVENT_IDS:])
    return after, _changes(state, after, event)


def timeouts_due(state: UserPresence, now: int, sweeper_id: str) -> list[ConnectionTimedOut]:
    """Timeout events for connections whose deadline passed by `now`.

    The id is derived from the deadline, so sweeping twice before the first timeout is applied
    writes a duplicate that `apply` ignores.
    """
    return [
        ConnectionTimedOut(
            event_id=f"timeout:{state.user_id}:{c.connection_id}:{c.deadline}",
            user_id=state.user_id,
            connection_id=c.connection_id,
            edge_id=sweeper_id,
            at=now,
        )
        for c in state.connections
        if c.deadline <= now
    ]


# Transitions: each edits the state or returns it unchanged (the same object).


def _opened(state: UserPresence, e: ConnectionOpened) -> UserPresence:
    if _find(state, e.connection_id) is not None:
        return state
    connection = Connection(
        connection_id=e.connection_id,
        edge_id=e.edge_id,
        opened_at=e.at,
        last_heartbeat=e.at,
        timeout_ms=e.timeout_ms,
        device=e.device,
    )
    status = e.status if e.status is not None and not state.online else state.status
    return replace(state, connections=(*state.connections, connection), status=status, last_seen=e.at)


def _closed(state: UserPresence, e: ConnectionClosed) -> UserPresence:
    if _find(state, e.connection_id) is None:
        return state
    return _without(state, e.connection_id, last_seen=e.at)


def _dropped(state: UserPresence, e: ConnectionDropped) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or connection.dropped_at is not None:
        return state
    return _with(state, replace(connection, dropped_at=e.at, grace_ms=e.grace_ms))


def _timed_out(state: UserPresence, e: ConnectionTimedOut) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.at < connection.deadline:  # a heartbeat arrived after the sweep
        return state
    last_alive = connection.last_heartbeat if connection.dropped_at is None else connection.dropped_at
    return _without(state, e.connection_id, last_seen=max(state.last_seen or 0, last_alive))


def _heartbeat(state: UserPresence, e: Heartbeat) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.at <= connection.last_heartbeat:
        return state
    return _with(state, replace(connection, last_heartbeat=e.at))


def _joined(state: UserPresence, e: ChannelJoined) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.channel in connection.channels:
        return state
    since = state.channel_since if e.channel in state.channel_since else {**state.channel_since, e.channel: e.at}
    state = replace(state, channel_since=since, last_seen=e.at)
    return _with(state, replace(connection, channels=(*connection.channels, e.channel)))


def _left(state: UserPresence, e: ChannelLeft) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.channel not in connection.channels:
        return state
    channels = tuple(c for c in connection.channels if c != e.channel)
    return _prune_channels(_with(replace(state, last_seen=e.at), replace(connection, channels=channels)))


def _updated(state: UserPresence, e: PresenceUpdated) -> UserPresence:
    status = state.status if e.status is None else e.status
    metadata = state.metadata if e.metadata is None else e.metadata
    if status == state.status and metadata == state.metadata:
        return state
    return replace(state, status=status, metadata=metadata, last_seen=e.at)


_TRANSITIONS: dict[type[Event], Callable[[UserPresence, Event], UserPresence]] = {
    ConnectionOpened: _opened,
    ConnectionClosed: _closed,
    ConnectionDropped: _dropped,
    ConnectionTimedOut: _timed_out,
    Heartbeat: _heartbeat,
    ChannelJoined: _joined,
    ChannelLeft: _left,
    PresenceUpdated: _updated,
}


def _find(state: UserPresence, connection_id: str) -> Connection | None:
    return next((c for c in state.connections if c.connection_id == connection_id), None)


def _with(state: UserPresence, connection: Connection) -> UserPresence:
    connections = tuple(connection if c.connection_id == connection.connection_id else c for c in state.connections)
    return replace(state, connections=connections)


def _without(state: UserPresence, connection_id: str, last_seen: int) -> UserPresence:
    connections = tuple(c for c in state.connections if c.connection_id != connection_id)
    return _prune_channels(replace(state, connections=connections, last_seen=last_seen))


def _prune_channels(state: UserPresence) -> UserPresence:
    present = _channels(state)
    if present == state.channel_since.keys():
        return state
    return replace(state, channel_since={c: t for c, t in state.channel_since.items() if c in present})


def _channels(state: UserPresence) -> set[str]:
    return {channel for c in state.connections for channel in c.channels}


# What subscribers see, before and after.


def member(state: UserPresence, channel: str) -> Member:
    return Member(
        user_id=state.user_id,
        status=state.public_status,
        joined_at=state.channel_since.get(channel, state.last_seen or 0),
        last_seen=state.last_seen or 0,
        connections=sum(channel in c.channels for c in state.connections),
        metadata=state.metadata,
    )


def _visible(m: Member) -> tuple[object, ...]:
    # last_seen moves with every activity; announcing it would turn each join into updates everywhere.
    return (m.status, m.connections, m.metadata)


def _changes(before: UserPresence, after: UserPresence, event: Event) -> list[Change]:
    reason: OfflineReason = "timeout" if isinstance(event, ConnectionTimedOut) else "leave"
    user_id, at = after.user_id, event.at
    ids = (f"{event.event_id}/{n}" for n in itertools.count())
    changes: list[Change] = []
    if after.online and not before.online:
        changes.append(UserCameOnline(change_id=next(ids), user_id=user_id, at=at, status=after.status))
    if before.online and after.online and before.status != after.status:
        changes.append(
            UserStatusChanged(
                change_id=next(ids), user_id=user_id, at=at, status=after.status, previous=before.status
            )
        )
    was, now = _channels(before), _channels(after)
    for channel in sorted(now - was):
        changes.append(MemberJoined(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                    member=member(after, channel)))
    for channel in sorted(now & was):
        m = member(after, channel)
        if _visible(m) != _visible(member(before, channel)):
            changes.append(MemberUpdated(change_id=next(ids), user_id=user_id, at=at, channel=channel, member=m))
    for channel in sorted(was - now):
        changes.append(MemberLeft(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                  reason=reason, last_seen=after.last_seen or at))
    if before.online and not after.online:
        changes.append(
            UserWentOffline(change_id=next(ids), user_id=user_id, at=at, reason=reason,
                            last_seen=after.last_seen or at)
        )
    return changes

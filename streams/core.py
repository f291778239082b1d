"""The pure presence core: `apply(state, event) -> (state, changes)`, and `due_events` for the sweeper.

Rules this module obeys:
1. No clock, no I/O, no randomness: time comes only from events, so a replay is exact.
2. Never raises on a well-formed event: an event that does not fit the state (a heartbeat of an
   unknown connection, a second close) changes nothing, so one odd record cannot stop a partition.
3. Idempotent: an event id seen recently changes nothing; heartbeats only move time forward; and
   through `apply_at`, an event at or before the log position the state records changes nothing.
4. Changes are derived by comparing what others could see before and after the event, so each
   transition below only edits state and never decides what to announce.
5. Whatever expires (connections, typing, statuses, activity) expires through an event the sweeper
   writes with `due_events`; each transition re-checks the deadline against the event's own time.
   A connection's edge may vouch for it with a lease (`edge.leased`, kept by the adapter as
   `EdgeLease` and handed in as `lease_of`): the sweeper then times it out only once the lease too
   is older than its timeout, and the fold re-checks that against the leases it holds then.
6. A user offline for longer than the retention is forgotten (`user.forgotten`): `apply` leaves a
   marker that only holds the log position, and the adapter writes a tombstone on the views; one
   retention later the marker is forgotten too, `apply` returns no state, and the adapter deletes it.
7. A user who asked to be erased (`user.erased`) leaves every channel and goes offline at once (the
   changes say "leave": others are not told why), and `apply` leaves the same marker as a forget, timed
   at the erasure, which the sweeper forgets one retention later. On a marker, an event that would
   change nothing on a new user (a late heartbeat, drop or close of a connection it no longer holds)
   leaves the marker, so no stray event shows the user again; one that would (a new connection, an
   update) starts the user afresh.
8. A user a service forced offline (`user.forced_offline`) loses every connection at once, each as if
   it closed cleanly: offline, last seen at the event, a "leave" from every channel. The state names
   the connections it ended (`forced_offline_connections`), so an edge tells that end from a timeout;
   they stay named until a later forced offline ends others (one that ends none changes nothing), or
   the user is forgotten or erased (a marker, or a fresh state, names none).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, cast

from schemas.changes import (
    Change,
    Member,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    OfflineReason,
    UserCameOnline,
    UserStatusChanged,
    UserView,
    UserWentOffline,
)
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
    Heartbeat,
    PresenceUpdated,
    StatusExpired,
    TypingExpired,
    TypingStarted,
    TypingStopped,
    UserErased,
    UserForcedOffline,
    UserForgotten,
    UserIdled,
)
from schemas.evolve import evolve
from schemas.state import Connection, EdgeLease, UserPresence

# Enough to absorb what a worker redoes after a rebalance (events since its last commit).
RECENT_EVENT_IDS = 64
DEFAULT_STATUS = "online"


# An edge's newest lease in the partition being folded, by edge id (None: it has none there).
LeaseOf = Callable[[str], EdgeLease | None]


def _no_lease(edge_id: str) -> EdgeLease | None:
    return None


def apply(state: UserPresence | None, event: Event, lease_of: LeaseOf = _no_lease, announce: bool = True
          ) -> tuple[UserPresence | None, list[Change]]:
    """`lease_of` gives the edges' leases in the event's partition as the log has them at this event.
    `announce=False` skips deriving the changes (a replay that wants only the states: the bulk of the
    cost of a heartbeat); an erasure's are derived anyway."""
    if isinstance(event, EdgeProbed | EdgeLeased):  # about the processor or an edge, not the user
        return state, []
    if isinstance(event, UserForgotten):
        return _forget(state, event), []
    if isinstance(event, UserErased):
        return _erase(state, event)
    marker = state if state is not None and state.forgotten else None
    if state is None or state.forgotten:  # a user forgotten and back starts afresh
        state = UserPresence(user_id=event.user_id)
    if event.event_id in state.recent_event_ids:
        return state, []
    transition = _TRANSITIONS.get(type(event))
    if transition is None:
        return marker or state, []
    if isinstance(event, ConnectionTimedOut) and _kept_alive(state, event, lease_of):
        after = state  # its edge renewed the lease after the sweep: like a heartbeat that lands after it
    else:
        after = _prune(transition(state, event))
    if marker is not None and after is state:  # a stray event does not bring the user back (rule 7)
        return marker, []
    if not isinstance(event, Heartbeat):  # heartbeats are idempotent by themselves: time only moves forward
        # Remembered even when it changed nothing: redone after a rebalance, on a state that has
        # moved on, it could take effect where it did not the first time.
        after = evolve(after, recent_event_ids=(*after.recent_event_ids, event.event_id)[-RECENT_EVENT_IDS:])
    return after, _changes(state, after, event) if announce else []


def _forget(state: UserPresence | None, e: UserForgotten) -> UserPresence | None:
    """Forgetting takes two of the sweeper's `user.forgotten`, one retention apart.

    Each applies only to the offline spell the sweeper saw (any activity since moved `last_seen`).
    The first leaves a marker: no view, only the log position, so a redo that starts before the
    forget still skips what was applied (else its first event would create the user again). The
    marker's `last_seen` is the time of the forget, so the sweeper forgets it one retention later,
    and a late copy of the first, naming the older `last_seen`, changes nothing.
    """
    if state is None or state.connections or (state.last_seen or 0) != e.last_seen:
        return state
    if state.forgotten:
        return None
    return UserPresence(user_id=state.user_id, last_seen=e.at, forgotten=True)


def _erase(state: UserPresence | None, e: UserErased) -> tuple[UserPresence | None, list[Change]]:
    """Every connection closed, nothing kept but a marker timed at the erasure (rule 7)."""
    if state is not None and not state.forgotten and e.event_id in state.recent_event_ids:
        return state, []
    marker = UserPresence(user_id=e.user_id, last_seen=e.at, forgotten=True)
    if state is None or state.forgotten:
        return (state if state == marker else marker), []
    return marker, _changes(state, marker, e)


def apply_at(state: UserPresence | None, event: Event, offset: int, index: int, lease_of: LeaseOf = _no_lease,
             announce: bool = True) -> tuple[UserPresence | None, list[Change]]:
    """`apply` for the event at `index` in the batch of the `presence.events` record at `offset`.

    After a failover a worker redoes the records since its group's last commit, and a commit can stay
    behind for longer than `recent_event_ids` remembers; a user's events are all in one partition, so
    what is at or before the position its state records was applied already. Its changes carry that
    position (`Change.source`): a redo on a state older than the changes already written writes them
    again at later offsets, and the channel stage drops them by it.
    """
    if state is not None and (offset, index) <= (state.applied_offset, state.applied_index):
        return state, []
    after, changes = apply(state, event, lease_of, announce)
    changes = [evolve(change, source=(offset, index, n)) for n, change in enumerate(changes)]
    if after is None or after is state:
        return after, changes
    return evolve(after, applied_offset=offset, applied_index=index), changes


def due_events(state: UserPresence, now: int, sweeper_id: str, forget_after_ms: int | None = None,
               lease_of: LeaseOf = _no_lease) -> list[Event]:
    """The expiry events due by `now`: connection timeouts, typing expiries, status expiry, auto-away,
    and forgetting a user offline for longer than `forget_after_ms` (never when None).

    A connection its edge's lease covers (`lease_of`, the leases in the user's partition) is due only
    once the lease's renewal is older than its timeout too.

    Ids are derived from the deadline, so sweeping twice before the first one is applied writes a
    duplicate that `apply` ignores (from the sweep time instead if that id was used already: see below).
    """

    def expiry(cls: type[Event], deadline: int, connection_id: str = "", **fields: Any) -> Event:
        key = ":".join((cls.type, state.user_id, connection_id, *fields.values(), str(deadline)))
        if key in state.recent_event_ids:
            # That deadline was swept before and the sweep lost (the deadline moved, then came back:
            # a timeout set and set back). `apply` would drop the same id as a duplicate for as long as
            # it remembers it, keeping what expired (a dead connection) meanwhile: the sweep time stands in.
            key = ":".join((cls.type, state.user_id, connection_id, *fields.values(), str(now)))
        return cls(event_id=key, user_id=state.user_id, connection_id=connection_id, edge_id=sweeper_id, at=now,
                   **fields)

    due: list[Event] = []
    for c in state.connections:
        deadline, alive_at = _deadline(c, lease_of)
        if deadline <= now:
            timeout = cast(ConnectionTimedOut, expiry(ConnectionTimedOut, deadline, c.connection_id))
            due.append(timeout if alive_at is None else evolve(timeout, alive_at=alive_at))
    due += [expiry(TypingExpired, t, channel=ch) for ch, t in sorted(state.typing.items()) if t <= now]
    if state.status_expires_at is not None and state.status_expires_at <= now:
        due.append(expiry(StatusExpired, state.status_expires_at))
    idle_at = _idle_at(state)
    if idle_at is not None and idle_at <= now:
        due.append(expiry(UserIdled, idle_at))
    last_seen = state.last_seen or 0
    if forget_after_ms is not None and not state.connections and last_seen + forget_after_ms <= now:
        due.append(UserForgotten(event_id=f"user.forgotten:{state.user_id}:{last_seen}", user_id=state.user_id,
                                 connection_id="", edge_id=sweeper_id, at=now, last_seen=last_seen))
    return due


def next_due_at(state: UserPresence, forget_after_ms: int | None = None, lease_of: LeaseOf = _no_lease) -> int | None:
    """The earliest time `due_events` has something for this state (None: nothing will ever be due)."""
    deadlines = [_deadline(c, lease_of)[0] for c in state.connections]
    deadlines += state.typing.values()
    if state.status_expires_at is not None:
        deadlines.append(state.status_expires_at)
    if (idle_at := _idle_at(state)) is not None:
        deadlines.append(idle_at)
    if forget_after_ms is not None and not state.connections:
        deadlines.append((state.last_seen or 0) + forget_after_ms)
    return min(deadlines, default=None)


def renewed(held: EdgeLease | None, lease: EdgeLeased) -> EdgeLease:
    """An edge's lease in a partition after `lease`: a later process of the edge (a larger `since`)
    takes over; a late renewal changes nothing."""
    if held is not None and (lease.since, lease.at) <= (held.since, held.at):
        return held
    return EdgeLease(edge_id=lease.edge_id, since=lease.since, at=lease.at, ttl_ms=lease.ttl_ms)


def _deadline(connection: Connection, lease_of: LeaseOf) -> tuple[int, int | None]:
    """When the connection stops counting as live, and the lease renewal that set it (None: its own
    heartbeats did)."""
    lease = lease_of(connection.edge_id)
    if lease is None or not lease.covers(connection):
        return connection.deadline, None
    if connection.dropped_at is not None and connection.grace_ms is not None:
        # Vouched for until its edge saw it drop: the reconnect grace runs from there.
        return connection.dropped_at + connection.grace_ms, connection.dropped_at
    return max(connection.deadline, lease.at + max(connection.timeout_in_force_ms, lease.ttl_ms)), lease.at


def user_view(state: UserPresence, event_id: str = "") -> UserView:
    """What anyone may see of the user: invisible users look offline, with no devices."""
    shown = state.shown_online
    return UserView(
        user_id=state.user_id,
        status=state.public_status,
        online=shown,
        last_seen=state.last_seen or 0,
        connections=len(state.connections) if shown else 0,
        devices=_devices(state.connections) if shown else (),
        metadata=state.metadata,
        status_metadata=state.status_metadata if shown else {},
        status_text=state.status_text if shown else None,
        status_emoji=state.status_emoji if shown else None,
        status_expires_at=state.status_expires_at if shown else None,
        event_id=event_id,
    )


# Transitions: each edits the state or returns it unchanged (the same object).


def _opened(state: UserPresence, e: ConnectionOpened) -> UserPresence:
    if _find(state, e.connection_id) is not None:
        return state
    connection = Connection(
        connection_id=e.connection_id,
        edge_id=e.edge_id,
        opened_at=e.at,
        last_heartbeat=e.at,
        last_active=e.at,
        timeout_ms=e.timeout_ms,
        device=e.device,
    )
    status = e.status if e.status is not None and not state.online else state.status
    metadata = state.metadata if e.metadata is None else e.metadata
    return evolve(
        state, connections=(*state.connections, connection), status=status, metadata=metadata,
        idle_after_ms=e.idle_after_ms, idle=state.idle and not _wakes(state, e.at), last_seen=_seen(state, e.at),
    )


def _closed(state: UserPresence, e: ConnectionClosed) -> UserPresence:
    if _find(state, e.connection_id) is None:
        return state
    return _without(state, e.connection_id, last_seen=e.at)


def _forced_offline(state: UserPresence, e: UserForcedOffline) -> UserPresence:
    """Every connection closed at `at`, and named as ended by force (rule 8)."""
    ended = tuple(c.connection_id for c in state.connections)
    if not ended:
        return state
    for connection_id in ended:
        state = _without(state, connection_id, last_seen=e.at)
    return evolve(state, forced_offline_connections=ended)


def _dropped(state: UserPresence, e: ConnectionDropped) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or connection.dropped_at is not None:
        return state
    return _with(state, evolve(connection, dropped_at=e.at, grace_ms=e.grace_ms))


def _kept_alive(state: UserPresence, e: ConnectionTimedOut, lease_of: LeaseOf) -> bool:
    """A lease renewed since the sweep keeps the connection; its own edge's word that it went silent stands."""
    connection = _find(state, e.connection_id)
    return connection is not None and e.edge_id != connection.edge_id and e.at < _deadline(connection, lease_of)[0]


def _timed_out(state: UserPresence, e: ConnectionTimedOut) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.at < connection.deadline:  # a heartbeat arrived after the sweep
        return state
    if connection.dropped_at is not None:
        last_alive = connection.dropped_at
    else:
        last_alive = max(connection.last_heartbeat, e.alive_at or 0)
    return _without(state, e.connection_id, last_seen=max(state.last_seen or 0, last_alive))


def _heartbeat(state: UserPresence, e: Heartbeat) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None:
        return state
    active = max(connection.last_active, e.active_at or 0)
    if e.at <= connection.last_heartbeat and active == connection.last_active:
        return state
    woken = _wakes(state, active)  # not `active > connection.last_active`: another connection may be later
    connection = evolve(connection, last_heartbeat=max(e.at, connection.last_heartbeat), last_active=active)
    return _with(evolve(state, idle=state.idle and not woken), connection)


def _joined(state: UserPresence, e: ChannelJoined) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.channel in connection.channels:
        return state
    since = state.channel_since if e.channel in state.channel_since else {**state.channel_since, e.channel: e.at}
    timeouts = connection.channel_timeouts
    if e.timeout_ms is not None:
        timeouts = {**timeouts, e.channel: e.timeout_ms}
    connection = evolve(connection, channels=(*connection.channels, e.channel), channel_timeouts=timeouts)
    return _active(_with(evolve(state, channel_since=since), connection), e)


def _left(state: UserPresence, e: ChannelLeft) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.channel not in connection.channels:
        return state
    channels = tuple(c for c in connection.channels if c != e.channel)
    timeouts = {c: t for c, t in connection.channel_timeouts.items() if c != e.channel}
    return _active(_with(state, evolve(connection, channels=channels, channel_timeouts=timeouts)), e)


def _updated(state: UserPresence, e: PresenceUpdated) -> UserPresence:
    changed = evolve(
        state,
        status=state.status if e.status is None else e.status,
        visible=state.visible if e.status is None else e.visible,
        status_metadata=_status_metadata(state, e),
        status_expires_at=state.status_expires_at if e.status is None and e.status_text is None else e.expires_at,
        status_text=_text(state.status_text, e.status_text),
        status_emoji=_text(state.status_emoji, e.status_emoji),
        metadata=state.metadata if e.metadata is None else e.metadata,
    )
    if e.timeout_ms is not None:
        changed = evolve(changed, connections=tuple(evolve(c, timeout_ms=e.timeout_ms) for c in state.connections))
    if changed == state and not (state.idle and state.online):  # while auto-away, even this is activity
        return state
    # Going invisible is the moment the user was last seen; coming back is seen at once.
    return evolve(_active(changed, e), last_seen=_seen(state if state.visible else changed, e.at))


def _typing_started(state: UserPresence, e: TypingStarted) -> UserPresence:
    connection = _find(state, e.connection_id)
    if connection is None or e.channel not in connection.channels or state.typing.get(e.channel, 0) >= e.expires_at:
        return state
    return _active(evolve(state, typing={**state.typing, e.channel: e.expires_at}), e)


def _typing_stopped(state: UserPresence, e: TypingStopped) -> UserPresence:
    if e.channel not in state.typing:
        return state
    return _active(evolve(state, typing={c: t for c, t in state.typing.items() if c != e.channel}), e)


def _typing_expired(state: UserPresence, e: TypingExpired) -> UserPresence:
    expires_at = state.typing.get(e.channel)
    if expires_at is None or e.at < expires_at:  # renewed after the sweep
        return state
    return evolve(state, typing={c: t for c, t in state.typing.items() if c != e.channel})


def _status_expired(state: UserPresence, e: StatusExpired) -> UserPresence:
    if state.status_expires_at is None or e.at < state.status_expires_at:
        return state
    return evolve(
        state, status=DEFAULT_STATUS, visible=True, status_metadata={}, status_text=None, status_emoji=None,
        status_expires_at=None,
    )


def _idled(state: UserPresence, e: UserIdled) -> UserPresence:
    idle_at = _idle_at(state)
    if idle_at is None or e.at < idle_at:  # activity after the sweep
        return state
    return evolve(state, idle=True)


# Each event type to its transition (which takes that type: the table is the dispatch).
_TRANSITIONS: dict[type[Event], Callable[[UserPresence, Any], UserPresence]] = {
    ConnectionOpened: _opened,
    ConnectionClosed: _closed,
    ConnectionDropped: _dropped,
    ConnectionTimedOut: _timed_out,
    Heartbeat: _heartbeat,
    ChannelJoined: _joined,
    ChannelLeft: _left,
    PresenceUpdated: _updated,
    TypingStarted: _typing_started,
    TypingStopped: _typing_stopped,
    TypingExpired: _typing_expired,
    StatusExpired: _status_expired,
    UserIdled: _idled,
    UserForcedOffline: _forced_offline,
}


def _status_metadata(state: UserPresence, e: PresenceUpdated) -> dict[str, object]:
    if e.status_metadata is not None:
        return e.status_metadata
    return state.status_metadata if e.status is None or e.status == state.status else {}


def _text(current: str | None, given: str | None) -> str | None:
    if given is None:
        return current
    return given or None  # an empty string clears


def _find(state: UserPresence, connection_id: str) -> Connection | None:
    return next((c for c in state.connections if c.connection_id == connection_id), None)


def _with(state: UserPresence, connection: Connection) -> UserPresence:
    connections = tuple(connection if c.connection_id == connection.connection_id else c for c in state.connections)
    return evolve(state, connections=connections)


def _without(state: UserPresence, connection_id: str, last_seen: int) -> UserPresence:
    gone = _find(state, connection_id)
    connections = tuple(c for c in state.connections if c.connection_id != connection_id)
    if gone is not None:  # the ones left inherit its activity: the activity clock never moves back (`_wakes`)
        connections = tuple(evolve(c, last_active=max(c.last_active, gone.last_active)) for c in connections)
    return evolve(state, connections=connections, last_seen=_seen(state, last_seen))


def _seen(state: UserPresence, at: int) -> int | None:
    """Last seen moves only while others can see the user: invisible users stay as they were last seen."""
    return max(state.last_seen or 0, at) if state.visible else state.last_seen


def _active(state: UserPresence, e: Event) -> UserPresence:
    """Activity by the user: last seen moves, the connection is active, auto-away ends."""
    # An event from no connection of the user's (a REST update) is activity on all of them, so that
    # it moves the activity clock like any other.
    own = _find(state, e.connection_id)
    connections = tuple(
        evolve(c, last_active=e.at) if (own is None or c is own) and e.at > c.last_active else c
        for c in state.connections
    )
    woken = _wakes(state, e.at)
    return evolve(state, connections=connections, idle=state.idle and not woken, last_seen=_seen(state, e.at))


def _wakes(state: UserPresence, active_at: int) -> bool:
    """Whether activity at `active_at` ends auto-away: only if it moves the user's activity clock.

    Otherwise the idle deadline stays where it was, the sweeper's next user.idled gets the id of the
    one already applied, `apply` drops it as a duplicate, and the user stays shown online for good.
    """
    last = _last_active(state)
    return last is None or active_at > last


def _last_active(state: UserPresence) -> int | None:
    """The user's activity clock: the latest activity on any of its connections."""
    return max((c.last_active for c in state.connections), default=None)


def _idle_at(state: UserPresence) -> int | None:
    """When the user goes auto-away, if it can: online, status online, not away yet, a policy set."""
    last = _last_active(state)
    if state.idle or state.idle_after_ms is None or last is None or state.status != DEFAULT_STATUS:
        return None
    return last + state.idle_after_ms


def _prune(state: UserPresence) -> UserPresence:
    """Channel join times and typing indicators only exist for channels the user is still in."""
    present = _channels(state)
    since = {c: t for c, t in state.channel_since.items() if c in present}
    typing = {c: t for c, t in state.typing.items() if c in present}
    if since == state.channel_since and typing == state.typing:
        return state
    return evolve(state, channel_since=since, typing=typing)


def _channels(state: UserPresence) -> set[str]:
    return {channel for c in state.connections for channel in c.channels}


def _devices(connections: tuple[Connection, ...]) -> tuple[str, ...]:
    return tuple(sorted(c.device for c in connections if c.device))


# What others see, before and after.


def _shown_channels(state: UserPresence) -> set[str]:
    return _channels(state) if state.shown_online else set()


def _shown_typing(state: UserPresence) -> set[str]:
    return set(state.typing) if state.shown_online else set()


def memberships(state: UserPresence) -> tuple[dict[str, Member], set[str]]:
    """What others see of the user now: it as a member of each channel, and the channels it types in."""
    return {channel: member(state, channel) for channel in _shown_channels(state)}, _shown_typing(state)


def member(state: UserPresence, channel: str) -> Member:
    in_channel = tuple(c for c in state.connections if channel in c.channels)
    return Member(
        user_id=state.user_id,
        status=state.public_status,
        joined_at=state.channel_since.get(channel, state.last_seen or 0),
        last_seen=state.last_seen or 0,
        connections=len(in_channel),
        metadata=state.metadata,
        devices=_devices(in_channel),
        status_metadata=state.status_metadata,
        status_text=state.status_text,
        status_emoji=state.status_emoji,
    )


def _visible(state: UserPresence, channel: str) -> tuple[object, ...]:
    """What `member` shows that others are told about, without building it (this runs for every event).

    last_seen moves with every activity; announcing it would turn each action into updates everywhere.
    """
    in_channel = tuple(c for c in state.connections if channel in c.channels)
    return (state.public_status, len(in_channel), state.metadata, _devices(in_channel), state.status_metadata,
            state.status_text, state.status_emoji)


def _changes(before: UserPresence, after: UserPresence, event: Event) -> list[Change]:
    reason: OfflineReason = "timeout" if isinstance(event, ConnectionTimedOut) else "leave"
    user_id, at = after.user_id, event.at
    ids = (f"{event.event_id}/{n}" for n in itertools.count())
    changes: list[Change] = []
    if after.shown_online and not before.shown_online:
        changes.append(UserCameOnline(change_id=next(ids), user_id=user_id, at=at, status=after.public_status))
    if before.shown_online and after.shown_online and before.public_status != after.public_status:
        changes.append(UserStatusChanged(
            change_id=next(ids), user_id=user_id, at=at, status=after.public_status, previous=before.public_status
        ))
    was, now = _shown_channels(before), _shown_channels(after)
    for channel in sorted(now - was):
        changes.append(MemberJoined(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                    member=member(after, channel)))
    for channel in sorted(now & was):
        if _visible(after, channel) != _visible(before, channel):
            changes.append(MemberUpdated(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                         member=member(after, channel)))
    typing_was, typing_now = _shown_typing(before), _shown_typing(after)
    for channel in sorted(typing_now ^ typing_was):
        if channel in now:  # leaving a channel clears its indicator in the channel stage already
            changes.append(MemberTyping(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                        typing=channel in typing_now))
    for channel in sorted(was - now):
        changes.append(MemberLeft(change_id=next(ids), user_id=user_id, at=at, channel=channel,
                                  reason=reason, last_seen=after.last_seen or at))
    if before.shown_online and not after.shown_online:
        changes.append(UserWentOffline(change_id=next(ids), user_id=user_id, at=at, reason=reason,
                                       last_seen=after.last_seen or at))
    return changes

"""Invariants of the presence core over random event logs.

A log is built from random steps for a few users, connections and channels: opens, closes, drops,
heartbeats, joins, leaves, updates, sweeps (`timeouts_due` at the current clock, delivered to the
log at a later random step, so heartbeats can land between a sweep and its timeouts) and
re-deliveries of earlier events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.changes import Change, MemberJoined, MemberLeft, MemberUpdated, UserCameOnline, UserWentOffline
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    Event,
    Heartbeat,
    PresenceUpdated,
)
from schemas.state import ChannelState, UserPresence
from streams.channels import apply_member_change
from streams.core import apply, timeouts_due

USERS = ("u1", "u2")
CONNECTIONS = ("c1", "c2")
CHANNELS = ("a", "b")
TIMEOUT = 10_000

users = st.sampled_from(USERS)
# A connection id, or the index of one of the user's open connections (to reach more interesting states).
connections = st.sampled_from((*CONNECTIONS, 0, 1))
channels = st.sampled_from(CHANNELS)
statuses = st.sampled_from(("online", "away", "busy"))
metadata = st.dictionaries(st.sampled_from(("typing", "mood")), st.booleans(), max_size=2)

opens = st.tuples(st.just("open"), users, st.sampled_from(CONNECTIONS), statuses)
joins = st.tuples(st.just("join"), users, connections, channels)
step = st.tuples(
    st.sampled_from((0, 100, 1_000, 4_000, 12_000)),  # how far the clock moves before the step
    st.one_of(
        opens,
        opens,
        joins,
        joins,
        st.tuples(st.just("close"), users, connections),
        st.tuples(st.just("drop"), users, connections, st.sampled_from((0, 3_000, 20_000))),
        st.tuples(st.just("heartbeat"), users, connections),
        st.tuples(st.just("leave"), users, connections, channels),
        st.tuples(st.just("update"), users, st.none() | statuses, st.none() | metadata),
        st.tuples(st.just("sweep"), st.booleans()),  # True: its timeouts reach the log only at "deliver"
        st.tuples(st.just("deliver")),
        st.tuples(st.just("redeliver"), st.integers(min_value=0, max_value=1_000)),
    ),
)
logs_steps = st.lists(step, min_size=20, max_size=80)


def event(op: tuple[Any, ...], event_id: str, at: int, state: UserPresence | None) -> Event:
    kind, user, *args = op
    if args and isinstance(args[0], int):
        open_ids = [c.connection_id for c in state.connections] if state else []
        args[0] = open_ids[args[0] % len(open_ids)] if open_ids else CONNECTIONS[0]
    common = {"event_id": event_id, "user_id": user, "edge_id": "edge", "at": at}
    if kind == "open":
        conn, status = args
        return ConnectionOpened(**common, connection_id=conn, timeout_ms=TIMEOUT, status=status)
    if kind == "close":
        return ConnectionClosed(**common, connection_id=args[0])
    if kind == "drop":
        conn, grace = args
        return ConnectionDropped(**common, connection_id=conn, grace_ms=grace)
    if kind == "heartbeat":
        return Heartbeat(**common, connection_id=args[0])
    if kind == "join":
        conn, channel = args
        return ChannelJoined(**common, connection_id=conn, channel=channel)
    if kind == "leave":
        conn, channel = args
        return ChannelLeft(**common, connection_id=conn, channel=channel)
    status, meta = args
    return PresenceUpdated(**common, connection_id="c1", status=status, metadata=meta)


def build_log(steps: list[tuple[int, tuple[Any, ...]]]) -> list[Event]:
    log: list[Event] = []
    states: dict[str, UserPresence] = {}
    swept: list[Event] = []  # timeouts written by a sweep, not yet in the log
    clock = 0
    for n, (advance, op) in enumerate(steps):
        clock += advance
        if op[0] == "sweep":
            swept.extend(e for s in states.values() for e in timeouts_due(s, clock, "sweeper"))
            if op[1]:
                continue
        if op[0] in ("sweep", "deliver"):
            new, swept = swept, []
        elif op[0] == "redeliver":
            new = [log[op[1] % len(log)]] if log else []
        else:
            new = [event(op, f"e{n}", clock, states.get(op[1]))]
        for e in new:
            states[e.user_id], _ = apply(states.get(e.user_id), e)
            log.append(e)
    return log


def replay(log: list[Event]) -> Iterator[tuple[Event, UserPresence, list[Change], dict[str, UserPresence]]]:
    """Apply the log; after each event yield it, the user's new state, its changes and all states."""
    states: dict[str, UserPresence] = {}
    for e in log:
        states[e.user_id], changes = apply(states.get(e.user_id), e)
        yield e, states[e.user_id], changes, states


def fold(log: list[Event]) -> tuple[dict[str, UserPresence], list[Change]]:
    states: dict[str, UserPresence] = {}
    changes: list[Change] = []
    for _, _, emitted, states in replay(log):  # noqa: B007  (the last one is the result)
        changes.extend(emitted)
    return dict(states), changes


def members_by_users(states: dict[str, UserPresence], channel: str) -> dict[str, tuple[Any, ...]]:
    """What the channel should show, derived from the user states alone."""
    return {
        s.user_id: (s.public_status, count, s.metadata, s.channel_since[channel])
        for s in states.values()
        if (count := sum(channel in c.channels for c in s.connections))
    }


def members_by_views(state: ChannelState | None) -> dict[str, tuple[Any, ...]]:
    members = state.members if state else ()
    return {m.user_id: (m.status, m.connections, m.metadata, m.joined_at) for m in members}


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_user_is_online_iff_it_has_a_connection(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    announced_online: dict[str, bool] = {}
    for _, state, changes, _ in replay(build_log(steps)):
        for change in changes:
            if isinstance(change, UserCameOnline | UserWentOffline):
                announced_online[change.user_id] = isinstance(change, UserCameOnline)
        assert announced_online.get(state.user_id, False) == bool(state.connections)
        assert state.channel_since.keys() == {ch for c in state.connections for ch in c.channels}


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_channel_views_folded_from_member_changes_match_the_user_states(
    steps: list[tuple[int, tuple[Any, ...]]],
) -> None:
    channel_states: dict[str, ChannelState] = {}
    for _, _, changes, states in replay(build_log(steps)):
        for change in changes:
            if isinstance(change, MemberJoined | MemberUpdated | MemberLeft):
                channel_states[change.channel], _ = apply_member_change(channel_states.get(change.channel), change)
        for channel in CHANNELS:
            assert members_by_views(channel_states.get(channel)) == members_by_users(states, channel)


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_replaying_the_same_log_gives_the_same_states_and_changes(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    log = build_log(steps)

    assert fold(log) == fold(list(log))


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_a_duplicate_right_after_an_event_changes_nothing(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    for e, state, _, _ in replay(build_log(steps)):
        again, changes = apply(state, e)
        assert changes == []
        assert again == state


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_online_and_offline_alternate_per_user(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    _, changes = fold(build_log(steps))

    per_user: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        if isinstance(change, UserCameOnline | UserWentOffline):
            per_user[change.user_id].append(change.type)
    for kinds in per_user.values():
        assert kinds == ["user.online", "user.offline"] * (len(kinds) // 2) + ["user.online"] * (len(kinds) % 2)

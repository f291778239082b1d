"""Invariants of the presence core over random event logs.

A log is built from random steps for a few users, connections and channels: opens (with devices,
metadata and an auto-away policy), closes, drops, heartbeats (with or without `active_at`), joins
(with or without a channel timeout), leaves, updates (status, invisible, text, emoji, expiring
statuses, timeouts; from a connection of the user or from none, like a REST update), typing starts
and stops, sweeps (`due_events` at the current clock: timeouts, typing and status expiries,
auto-away; delivered to the log at a later random step, so activity can land between a sweep and
its events) and re-deliveries of earlier events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.changes import (
    Change,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    UserCameOnline,
    UserWentOffline,
)
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    Event,
    Heartbeat,
    PresenceUpdated,
    TypingStarted,
    TypingStopped,
)
from schemas.state import ChannelState, UserPresence
from streams.channels import apply_member_change
from streams.core import apply, due_events, member

USERS = ("u1", "u2")
CONNECTIONS = ("c1", "c2")
CHANNELS = ("a", "b")
TIMEOUT = 20_000
REST = "rest:edge"  # the connection id of an update that comes from no connection of the user's

users = st.sampled_from(USERS)
# A connection id, or the index of one of the user's open connections (to reach more interesting states).
connections = st.sampled_from((*CONNECTIONS, 0, 1))
channels = st.sampled_from(CHANNELS)
# A status given at connect cannot say it hides the user (connection.opened has no `visible`), so
# invisible is only set by updates.
statuses = st.sampled_from(("online", "away", "busy"))
# None keeps the status; invisible (`visible=False`) is drawn often, to come and go while typing.
update_statuses = st.sampled_from((None, None, "online", "online", "away", "busy", "invisible", "invisible"))
metadata = st.dictionaries(st.sampled_from(("typing", "mood")), st.booleans(), max_size=2)
texts = st.sampled_from((None, None, "", "lunch", "meeting"))

opens = st.tuples(st.just("open"), users, st.sampled_from(CONNECTIONS), st.none() | statuses,
                  st.sampled_from((None, "phone", "web")), st.none() | metadata, st.sampled_from((None, 2_000, 6_000)))
joins = st.tuples(st.just("join"), users, connections, channels, st.sampled_from((None, None, 3_000, 30_000)))
# For typing, a channel can also be 0: the first channel the connection is in (to type where it is present).
typings = st.tuples(st.just("typing"), users, connections, st.sampled_from((*CHANNELS, 0, 0)),
                    st.sampled_from((1_000, 5_000, 30_000)))  # expires this long after it started
# active_at: this long before the heartbeat, or none.
heartbeats = st.tuples(st.just("heartbeat"), users, connections, st.sampled_from((None, 0, 500, 3_000)))
updates = st.tuples(
    st.just("update"), users,
    st.sampled_from((0, 1, REST)),  # a connection of the user's, or none (a REST update)
    update_statuses, st.none() | metadata, texts, texts,
    st.sampled_from((None, 2_000, 8_000)),  # the status expires this long after the update
    st.sampled_from((None, None, 5_000, 20_000)),  # a per-user timeout
)
# For a stop, a channel can also be 0: the first channel the user types in.
stops = st.tuples(st.just("stop"), users, connections, st.sampled_from((*CHANNELS, 0, 0)))
sweeps = st.tuples(st.just("sweep"), st.booleans())  # True: its events reach the log only at "deliver"
OPS = {
    "open": opens,
    "join": joins,
    "typing": typings,
    "heartbeat": heartbeats,
    "update": updates,
    "sweep": sweeps,
    "stop": stops,
    "close": st.tuples(st.just("close"), users, connections),
    "drop": st.tuples(st.just("drop"), users, connections, st.sampled_from((0, 3_000, 20_000))),
    "leave": st.tuples(st.just("leave"), users, connections, channels),
    "deliver": st.tuples(st.just("deliver")),
    "redeliver": st.tuples(st.just("redeliver"), st.integers(min_value=0, max_value=1_000)),
}


def logs(**weights: int) -> st.SearchStrategy[list[tuple[int, tuple[Any, ...]]]]:
    """Lists of steps, each op drawn with its weight (1 unless given; `one_of` would draw them alike)."""
    ops = st.sampled_from(tuple(op for name, op in OPS.items() for _ in range(weights.get(name, 1))))
    step = st.tuples(
        st.sampled_from((0, 100, 1_000, 4_000, 12_000)),  # how far the clock moves before the step
        ops.flatmap(lambda op: op),
    )
    return st.lists(step, min_size=20, max_size=80)


# Mostly what keeps users online, in channels and typing.
busy_logs = logs(open=3, join=3, typing=3, heartbeat=3, update=2, sweep=2)
# No channels, fewer actions and more sweeps: users stay quiet long enough to go away, statuses expire.
quiet_logs = logs(open=3, heartbeat=2, update=4, sweep=5, join=0, typing=0, stop=0, leave=0, redeliver=0)
logs_steps = busy_logs | quiet_logs


def event(op: tuple[Any, ...], event_id: str, at: int, state: UserPresence | None) -> Event:
    kind, user, *args = op
    if args and isinstance(args[0], int):
        open_ids = [c.connection_id for c in state.connections] if state else []
        args[0] = open_ids[args[0] % len(open_ids)] if open_ids else CONNECTIONS[0]
    common = {"event_id": event_id, "user_id": user, "edge_id": "edge", "at": at}
    if kind == "open":
        conn, status, device, meta, idle_after = args
        return ConnectionOpened(**common, connection_id=conn, timeout_ms=TIMEOUT, status=status, device=device,
                                metadata=meta, idle_after_ms=idle_after)
    if kind == "close":
        return ConnectionClosed(**common, connection_id=args[0])
    if kind == "drop":
        conn, grace = args
        return ConnectionDropped(**common, connection_id=conn, grace_ms=grace)
    if kind == "heartbeat":
        conn, inactive_for = args  # active_at: that long before the heartbeat, or none
        return Heartbeat(**common, connection_id=conn, active_at=None if inactive_for is None else at - inactive_for)
    if kind == "join":
        conn, channel, timeout = args
        return ChannelJoined(**common, connection_id=conn, channel=channel, timeout_ms=timeout)
    if kind == "leave":
        conn, channel = args
        return ChannelLeft(**common, connection_id=conn, channel=channel)
    if kind == "typing":
        conn, channel, expires_in = args
        if channel == 0:
            present = [ch for c in (state.connections if state else ()) if c.connection_id == conn for ch in c.channels]
            channel = present[0] if present else CHANNELS[0]
        return TypingStarted(**common, connection_id=conn, channel=channel, expires_at=at + expires_in)
    if kind == "stop":
        conn, channel = args
        if channel == 0:
            channel = min(state.typing) if state and state.typing else CHANNELS[0]
        return TypingStopped(**common, connection_id=conn, channel=channel)
    conn, status, meta, text, emoji, expires_in, timeout = args
    return PresenceUpdated(**common, connection_id=conn, status=status, metadata=meta, status_text=text,
                           status_emoji=emoji, expires_at=None if expires_in is None else at + expires_in,
                           visible=status != "invisible", timeout_ms=timeout)


def build_log(steps: list[tuple[int, tuple[Any, ...]]]) -> list[Event]:
    log: list[Event] = []
    states: dict[str, UserPresence] = {}
    swept: list[Event] = []  # events written by a sweep, not yet in the log
    clock = 0
    for n, (advance, op) in enumerate(steps):
        clock += advance
        if op[0] == "sweep":
            swept.extend(e for s in states.values() for e in due_events(s, clock, "sweeper"))
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
    """What the channel should show, derived from the user states alone: users shown online with a
    connection in the channel (invisible users are not shown)."""
    return {
        s.user_id: (s.public_status, len(in_channel), s.metadata, s.channel_since[channel],
                    tuple(sorted(c.device for c in in_channel if c.device)), s.status_text, s.status_emoji)
        for s in states.values()
        if s.shown_online and (in_channel := [c for c in s.connections if channel in c.channels])
    }


def members_by_views(state: ChannelState | None) -> dict[str, tuple[Any, ...]]:
    members = state.members if state else ()
    return {m.user_id: (m.status, m.connections, m.metadata, m.joined_at, m.devices, m.status_text, m.status_emoji)
            for m in members}


def typing_by_users(states: dict[str, UserPresence], channel: str) -> tuple[str, ...]:
    """Who the channel should show typing: users shown online, present in it, with an indicator."""
    return tuple(sorted(
        s.user_id for s in states.values()
        if s.shown_online and channel in s.typing and any(channel in c.channels for c in s.connections)
    ))


@settings(max_examples=150, deadline=None)
@given(logs_steps)
def test_user_is_shown_online_iff_it_has_a_connection_and_is_visible(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    announced_online: dict[str, bool] = {}
    for _, state, changes, _ in replay(build_log(steps)):
        for change in changes:
            if isinstance(change, UserCameOnline | UserWentOffline):
                announced_online[change.user_id] = isinstance(change, UserCameOnline)
        assert announced_online.get(state.user_id, False) == (bool(state.connections) and state.visible)
        present = {ch for c in state.connections for ch in c.channels}
        assert state.channel_since.keys() == present
        assert state.typing.keys() <= present


@settings(max_examples=300, deadline=None)
@given(logs_steps)
def test_channel_views_folded_from_member_changes_match_the_user_states(
    steps: list[tuple[int, tuple[Any, ...]]],
) -> None:
    channel_states: dict[str, ChannelState] = {}
    for _, _, changes, states in replay(build_log(steps)):
        for change in changes:
            if isinstance(change, MemberJoined | MemberUpdated | MemberLeft | MemberTyping):
                channel_states[change.channel], _ = apply_member_change(channel_states.get(change.channel), change)
        for channel in CHANNELS:
            folded = channel_states.get(channel)
            assert members_by_views(folded) == members_by_users(states, channel)
            assert (folded.typing if folded else ()) == typing_by_users(states, channel)
            # Every other field too (last seen is not announced by itself: it moves with every action).
            for m in folded.members if folded else ():
                assert m == replace(member(states[m.user_id], channel), last_seen=m.last_seen)


@settings(max_examples=300, deadline=None)
@given(logs_steps)
def test_every_due_event_takes_effect_when_applied_at_once(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    """A due event never has the id of one already applied: otherwise `apply` would drop it as a
    duplicate and what it expires (a connection, an indicator, a status, activity) would stay."""
    now = 0
    for e, state, _, _ in replay(build_log(steps)):
        now = max(now, e.at)
        for due in due_events(state, now, "sweeper"):
            if due.event_id in state.recent_event_ids:
                # Re-keyed by the sweep time already: only a deadline that came back twice within that
                # very millisecond gets here, and the next sweep's time is a new id.
                assert due.event_id.endswith(f":{now}"), due
                continue
            after, _ = apply(state, due)
            assert replace(after, recent_event_ids=()) != replace(state, recent_event_ids=()), due


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

"""Presence timeouts in the presence core: per-channel (`channel.joined.timeout_ms`) and per-user
(`presence.updated.timeout_ms`), and `due_events` with every kind of expiry at once."""

from __future__ import annotations

from schemas.changes import MemberJoined, MemberLeft, UserWentOffline
from schemas.events import ConnectionTimedOut, EdgeLeased, StatusExpired, TypingExpired, UserIdled
from schemas.state import EdgeLease
from streams.core import apply, due_events
from tests.unit.test_core import (
    EDGE,
    GRACE,
    TIMEOUT,
    assert_noop,
    cid,
    connection,
    dropped,
    expect,
    heartbeat,
    joined,
    left,
    opened,
    run,
    timed_out,
    typing_started,
    updated,
    view,
)

# Per-channel timeout.


def test_channel_joined_with_a_shorter_timeout_brings_the_deadline_forward() -> None:
    before, _ = run(opened("c1", 0))
    e = joined("c1", "room", 10, timeout=5_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, channel_since={"room": 10}, last_seen=10,
                           connections=(connection("c1", 0, channels=("room",), last_active=10,
                                                   channel_timeouts={"room": 5_000}),))
    assert changes == [MemberJoined(change_id=cid(e, 0), user_id="u", at=10, channel="room",
                                    member=view(joined_at=10, last_seen=10))]
    assert state.connections[0].deadline == 5_000  # last heartbeat + the channel's timeout
    assert due_events(state, 4_999, "sweeper") == []
    assert due_events(state, 5_000, "sweeper") == [
        ConnectionTimedOut(event_id="connection.timed_out:u:c1:5000", user_id="u", connection_id="c1",
                           edge_id="sweeper", at=5_000),
    ]


def test_channel_joined_with_a_longer_timeout_keeps_the_connection_deadline() -> None:
    state, _ = run(opened("c1", 0), joined("c1", "room", 10, timeout=60_000))

    assert state.connections[0].channel_timeouts == {"room": 60_000}
    assert state.connections[0].deadline == TIMEOUT


def test_the_shortest_channel_timeout_counts_from_the_last_heartbeat() -> None:
    state, _ = run(opened("c1", 0), joined("c1", "a", 10, timeout=8_000), joined("c1", "b", 20, timeout=5_000),
                   joined("c1", "c", 30), heartbeat("c1", 1_000))

    assert state.connections[0].channel_timeouts == {"a": 8_000, "b": 5_000}
    assert state.connections[0].deadline == 6_000


def test_channel_left_drops_its_timeout() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10, timeout=5_000), joined("c1", "lobby", 20))
    e = left("c1", "room", 30)

    state, _ = apply(before, e)

    assert state == expect(before, e, channel_since={"lobby": 20}, last_seen=30,
                           connections=(connection("c1", 0, channels=("lobby",), last_active=30),))
    assert state.connections[0].deadline == TIMEOUT


def test_connection_timed_out_at_the_channel_deadline_leaves_with_reason_timeout() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10, timeout=5_000), heartbeat("c1", 1_000))
    e = timed_out("c1", 6_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(), channel_since={}, last_seen=1_000)
    assert changes == [
        MemberLeft(change_id=cid(e, 0), user_id="u", at=6_000, channel="room", reason="timeout", last_seen=1_000),
        UserWentOffline(change_id=cid(e, 1), user_id="u", at=6_000, reason="timeout", last_seen=1_000),
    ]


def test_connection_timed_out_after_leaving_the_short_timeout_channel_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10, timeout=5_000))
    [sweep] = due_events(before, 5_000, "sweeper")
    state, _ = apply(before, left("c1", "room", 4_000))

    assert_noop(state, sweep)


def test_the_channel_timeout_applies_only_to_the_connection_that_joined() -> None:
    state, _ = run(opened("c1", 0), opened("c2", 0), joined("c1", "room", 10, timeout=5_000),
                   joined("c2", "room", 20))

    assert [c.deadline for c in state.connections] == [5_000, TIMEOUT]


# Per-user timeout.


def test_presence_updated_timeout_applies_to_the_current_connections() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), opened("c2", 20), heartbeat("c2", 1_000))
    e = updated(2_000, timeout=10_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, last_seen=2_000, connections=(
        connection("c1", 0, channels=("room",), last_active=2_000, timeout=10_000),
        connection("c2", 20, last_heartbeat=1_000, timeout=10_000),
    ))
    assert changes == []  # nobody else sees timeouts
    assert [c.deadline for c in state.connections] == [10_000, 11_000]


def test_presence_updated_timeout_does_not_apply_to_later_connections() -> None:
    state, _ = run(opened("c1", 0), updated(10, timeout=10_000), opened("c2", 20))

    assert [c.timeout_ms for c in state.connections] == [10_000, TIMEOUT]


def test_presence_updated_timeout_still_yields_to_a_shorter_channel_timeout_and_drop_grace() -> None:
    state, _ = run(opened("c1", 0), joined("c1", "room", 10, timeout=5_000), opened("c2", 20),
                   updated(30, timeout=60_000), dropped("c2", 100, grace=2_000))

    assert [c.deadline for c in state.connections] == [5_000, 2_100]


def test_presence_updated_with_the_current_timeout_is_ignored() -> None:
    before, _ = run(opened("c1", 0), opened("c2", 5))

    assert_noop(before, updated(10, timeout=TIMEOUT))


def test_presence_updated_timeout_while_offline_is_ignored() -> None:
    before, _ = run(opened("c1", 0), timed_out("c1", TIMEOUT))

    assert_noop(before, updated(40_000, timeout=10_000))


# due_events with everything due at once.


def test_due_events_lists_timeouts_typing_status_and_idle_in_that_order() -> None:
    state, _ = run(opened("c1", 0, idle_after=20_000), joined("c1", "room", 10, timeout=60_000),
                   opened("c2", 100, idle_after=20_000), joined("c2", "room", 110),
                   typing_started("c2", "room", 200, expires_at=5_000),
                   updated(300, text="brb", expires_at=10_000, conn="c2"))

    assert due_events(state, 40_000, "sweeper-1") == [
        ConnectionTimedOut(event_id="connection.timed_out:u:c1:30000", user_id="u", connection_id="c1",
                           edge_id="sweeper-1", at=40_000),
        ConnectionTimedOut(event_id="connection.timed_out:u:c2:30100", user_id="u", connection_id="c2",
                           edge_id="sweeper-1", at=40_000),
        TypingExpired(event_id="typing.expired:u::room:5000", user_id="u", connection_id="", edge_id="sweeper-1",
                      at=40_000, channel="room"),
        StatusExpired(event_id="status.expired:u::10000", user_id="u", connection_id="", edge_id="sweeper-1",
                      at=40_000),
        UserIdled(event_id="user.idled:u::20300", user_id="u", connection_id="", edge_id="sweeper-1", at=40_000),
    ]


def test_a_deadline_that_comes_back_after_its_sweep_lost_is_swept_again_with_a_new_id() -> None:
    # c1 is dead (no heartbeats). Its sweep at 12_000 loses to a longer per-user timeout; the timeout
    # is then set back, and the deadline with it. An id from the deadline alone would be that of the
    # sweep already applied: dropped as a duplicate, it would leave c1 online for good.
    before, _ = run(opened("c1", 0), updated(10, timeout=5_000, conn="rest:edge-1", eid="short"))
    [lost] = due_events(before, 12_000, "sweeper")
    state, _ = run(updated(11_000, timeout=60_000, conn="rest:edge-1", eid="long"), lost,
                   updated(12_000, timeout=5_000, conn="rest:edge-1", eid="short-again"), state=before)
    assert lost.event_id == "connection.timed_out:u:c1:5000"
    assert state.connections[0].deadline == 5_000

    due = due_events(state, 13_000, "sweeper")

    assert due == [ConnectionTimedOut(event_id="connection.timed_out:u:c1:13000", user_id="u", connection_id="c1",
                                      edge_id="sweeper", at=13_000)]
    state, changes = apply(state, due[0])
    assert not state.online
    assert changes == [UserWentOffline(change_id=cid(due[0], 0), user_id="u", at=13_000, reason="timeout",
                                       last_seen=12_000)]


# Edge leases: an edge vouches for the connections it holds, so they need no heartbeats.


def lease(at: int, since: int = 0, edge: str = EDGE, ttl: int = 10_000) -> EdgeLease:
    return EdgeLease(edge_id=edge, since=since, at=at, ttl_ms=ttl)


def test_a_connection_its_edges_lease_covers_is_due_a_timeout_after_the_renewal_and_last_seen_then() -> None:
    state, _ = run(opened("c1", 100), joined("c1", "room", 200))
    leases = {EDGE: lease(50_000)}

    assert due_events(state, TIMEOUT + 100, "sweeper") != []  # by its own heartbeats it would be gone
    assert due_events(state, 80_000 - 1, "sweeper", lease_of=leases.get) == []
    [timeout] = due_events(state, 80_000, "sweeper", lease_of=leases.get)
    assert timeout == ConnectionTimedOut(event_id="connection.timed_out:u:c1:80000", user_id="u", connection_id="c1",
                                         edge_id="sweeper", at=80_000, alive_at=50_000)
    after, changes = apply(state, timeout)

    assert after is not None and after.connections == () and after.last_seen == 50_000
    assert [type(c) for c in changes] == [MemberLeft, UserWentOffline]
    assert isinstance(changes[1], UserWentOffline) and changes[1].last_seen == 50_000


def test_a_lease_covers_neither_another_edges_connections_nor_an_earlier_process() -> None:
    state, _ = run(opened("c1", 100))
    own_deadline = TIMEOUT + 100

    for leases in ({"edge-2": lease(50_000, edge="edge-2")}, {EDGE: lease(50_000, since=101)}):
        [timeout] = due_events(state, own_deadline, "sweeper", lease_of=leases.get)
        assert timeout.at == own_deadline and isinstance(timeout, ConnectionTimedOut) and timeout.alive_at is None


def test_a_connection_its_lease_covered_keeps_the_whole_reconnect_grace_from_its_drop() -> None:
    state, _ = run(opened("c1", 100), dropped("c1", 60_000))  # its own heartbeat deadline passed long ago
    lease_of = {EDGE: lease(59_000)}.get

    assert due_events(state, 60_000 + GRACE - 1, "sweeper", lease_of=lease_of) == []
    [timeout] = due_events(state, 60_000 + GRACE, "sweeper", lease_of=lease_of)
    assert isinstance(timeout, ConnectionTimedOut) and timeout.alive_at == 60_000
    after, _ = apply(state, timeout, lease_of)
    assert after is not None and after.connections == () and after.last_seen == 60_000


def test_a_timeout_judged_by_a_lease_the_edge_renewed_before_it_reached_the_fold_changes_nothing() -> None:
    state, _ = run(opened("c1", 100))
    [timeout] = due_events(state, 80_000, "sweeper", lease_of={EDGE: lease(50_000)}.get)
    renewed = {EDGE: lease(79_000)}.get  # written while the sweeper judged: the fold reads it first

    after, changes = apply(state, timeout, renewed)
    assert after is not None and [c.connection_id for c in after.connections] == ["c1"]
    assert changes == []
    assert apply(state, timeout, {EDGE: lease(50_000)}.get)[0].connections == ()  # not renewed: it applies


def test_a_lease_vouches_for_its_ttl_when_the_connections_timeout_is_shorter() -> None:
    state, _ = run(opened("c1", 100, timeout=3_000))

    lease_of = {EDGE: lease(50_000, ttl=10_000)}.get

    assert due_events(state, 60_000 - 1, "sweeper", lease_of=lease_of) == []
    assert [e.at for e in due_events(state, 60_000, "sweeper", lease_of=lease_of)] == [60_000]


def test_a_lease_replayed_or_applied_changes_no_user() -> None:
    state, _ = run(opened("c1", 100))
    renewal = EdgeLeased(event_id="l1", user_id="~probe-0", connection_id="", edge_id=EDGE, at=5_000, since=0,
                         ttl_ms=10_000)

    assert apply(state, renewal) == (state, [])
    assert apply(None, renewal) == (None, [])


def test_the_connections_own_edge_times_it_out_for_silence_whatever_its_lease_and_names_its_last_frame() -> None:
    state, _ = run(opened("c1", 100))
    silent = ConnectionTimedOut(event_id="edge-timeout", user_id="u", connection_id="c1", edge_id=EDGE, at=70_000,
                                alive_at=67_000)
    from_sweeper = ConnectionTimedOut(event_id="sweep", user_id="u", connection_id="c1", edge_id="sweeper",
                                      at=70_000)
    lease_of = {EDGE: lease(69_000)}.get

    assert apply(state, from_sweeper, lease_of)[0] is not None
    assert apply(state, from_sweeper, lease_of)[0].connections != ()  # the lease keeps it
    after, changes = apply(state, silent, lease_of)
    assert after is not None and after.connections == () and after.last_seen == 67_000
    assert [type(c) for c in changes] == [UserWentOffline]

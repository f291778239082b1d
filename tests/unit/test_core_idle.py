"""Auto-away in the presence core: `user.idled` after `idle_after_ms` without activity, and waking up."""

from __future__ import annotations

from dataclasses import replace

from schemas.changes import MemberJoined, MemberUpdated, UserStatusChanged
from schemas.events import UserIdled
from schemas.state import UserPresence
from streams.core import apply, due_events
from tests.unit.test_core import (
    assert_noop,
    cid,
    closed,
    connection,
    expect,
    heartbeat,
    idled,
    joined,
    opened,
    run,
    typing_started,
    updated,
    view,
)

IDLE = 60_000
FOREVER = 10**9  # a connection timeout that never interferes


def idle_events(state: UserPresence, now: int) -> list[str]:
    return [e.event_id for e in due_events(state, now, "sweeper") if isinstance(e, UserIdled)]


def test_connection_opened_stores_the_idle_policy_and_the_activity_time() -> None:
    e = opened("c1", 100, idle_after=IDLE)

    state, _ = apply(None, e)

    assert state.idle_after_ms == IDLE
    assert state.connections == (connection("c1", 100, last_active=100),)
    assert not state.idle


def test_due_events_lists_user_idled_after_idle_after_ms_without_activity() -> None:
    state, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), joined("c1", "room", 1_000),
                   heartbeat("c1", 30_000))

    assert due_events(state, 60_999, "sweeper") == []
    # Heartbeats are not activity: the deadline is the join plus the idle period.
    assert due_events(state, 61_000, "sweeper") == [
        UserIdled(event_id="user.idled:u::61000", user_id="u", connection_id="", edge_id="sweeper", at=61_000),
    ]


def test_due_events_lists_no_user_idled_without_a_policy() -> None:
    state, _ = run(opened("c1", 0, timeout=FOREVER))

    assert due_events(state, 10**8, "sweeper") == []


def test_user_idled_shows_the_user_away() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10))
    e = idled(60_010, deadline=60_010)

    state, changes = apply(before, e)

    # Not an activity of the user: last seen stays; the chosen status stays online.
    assert state == expect(before, e, idle=True)
    assert state.status == "online"
    assert state.public_status == "away"
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=60_010, status="away", previous="online"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=60_010, channel="room",
                      member=view(joined_at=10, last_seen=10, status="away")),
    ]


def test_user_idled_before_the_idle_deadline_is_ignored() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10))

    assert_noop(before, idled(60_009, deadline=60_010))


def test_user_idled_loses_to_activity_after_the_sweep() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), joined("c1", "room", 10))
    [sweep] = due_events(before, 60_010, "sweeper")
    active, _ = apply(before, typing_started("c1", "room", 60_005, expires_at=65_000))

    assert_noop(active, sweep)
    assert idle_events(active, 120_005) == ["user.idled:u::120005"]


def test_user_idled_while_busy_is_ignored_and_not_due() -> None:
    before, _ = run(opened("c1", 0, status="busy", idle_after=IDLE, timeout=FOREVER))

    assert due_events(before, 10**8, "sweeper") == []
    assert_noop(before, idled(10**8, deadline=IDLE))


def test_user_idled_twice_is_ignored() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), idled(IDLE, deadline=IDLE))

    assert due_events(before, 10**8, "sweeper") == []
    assert_noop(before, idled(IDLE + 5, deadline=IDLE + 5))


def test_activity_ends_auto_away() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10), idled(IDLE + 10, deadline=IDLE + 10))
    e = joined("c1", "lobby", 70_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, idle=False, channel_since={"room": 10, "lobby": 70_000}, last_seen=70_000,
                           connections=(connection("c1", 0, channels=("room", "lobby"), last_active=70_000),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=70_000, status="online", previous="away"),
        MemberJoined(change_id=cid(e, 1), user_id="u", at=70_000, channel="lobby",
                     member=view(joined_at=70_000, last_seen=70_000)),
        MemberUpdated(change_id=cid(e, 2), user_id="u", at=70_000, channel="room",
                      member=view(joined_at=10, last_seen=70_000)),
    ]
    assert idle_events(state, 130_000) == ["user.idled:u::130000"]


def test_heartbeat_with_a_newer_active_at_ends_auto_away() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10), idled(IDLE + 10, deadline=IDLE + 10))
    e = heartbeat("c1", 70_000, active_at=65_000)

    state, changes = apply(before, e)

    # A heartbeat is not remembered as a seen id, and does not move last seen.
    assert state == replace(before, idle=False, connections=(
        connection("c1", 0, channels=("room",), last_heartbeat=70_000, last_active=65_000),
    ))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=70_000, status="online", previous="away"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=70_000, channel="room",
                      member=view(joined_at=10, last_seen=10)),
    ]
    assert idle_events(state, 125_000) == ["user.idled:u::125000"]


def test_heartbeat_with_active_at_before_idle_moves_the_deadline() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER))

    state, changes = apply(before, heartbeat("c1", 30_000, active_at=20_000))

    assert changes == []
    assert state.connections == (connection("c1", 0, last_heartbeat=30_000, last_active=20_000, timeout=FOREVER),)
    assert idle_events(state, 80_000) == ["user.idled:u::80000"]


def test_heartbeat_without_newer_active_at_keeps_the_user_away() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10), idled(IDLE + 10, deadline=IDLE + 10))

    for e in (heartbeat("c1", 70_000), heartbeat("c1", 70_000, active_at=10), heartbeat("c1", 70_000, active_at=5)):
        state, changes = apply(before, e)
        assert changes == []
        assert state.idle
        assert state.connections == (connection("c1", 0, channels=("room",), last_heartbeat=70_000,
                                                last_active=10),)


def test_heartbeat_with_active_at_older_than_another_connection_keeps_the_user_away() -> None:
    # c2 was active at 100: activity on c1 at 50 is old news, so the user stays away. (Waking here
    # once left the user shown online for good: the idle deadline, 60_100, did not move, and the
    # sweeper's next user.idled had the id of the one already applied.)
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), opened("c2", 100, idle_after=IDLE,
                                                                             timeout=FOREVER),
                    idled(IDLE + 100, deadline=IDLE + 100))

    state, changes = apply(before, heartbeat("c1", 61_000, active_at=50))

    assert changes == []
    assert state.idle
    assert state.connections[0].last_active == 50


def test_presence_updated_busy_ends_auto_away_and_online_restarts_the_idle_clock() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), idled(IDLE, deadline=IDLE))
    busy = updated(70_000, status="busy")

    state, changes = apply(before, busy)

    assert not state.idle
    assert changes == [UserStatusChanged(change_id=cid(busy, 0), user_id="u", at=70_000, status="busy",
                                         previous="away")]
    assert due_events(state, 10**8, "sweeper") == []

    state, _ = apply(state, updated(80_000, status="online"))
    assert idle_events(state, 140_000) == ["user.idled:u::140000"]


def test_presence_updated_without_a_connection_ends_auto_away_and_moves_the_idle_clock() -> None:
    # A REST update carries no connection of the user's. It once ended auto-away without moving the
    # idle deadline, so the sweeper's next user.idled had the id of the one already applied, was
    # dropped as a duplicate, and the user stayed shown online without any activity.
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), joined("c1", "room", 10),
                    idled(IDLE + 10, deadline=IDLE + 10))
    e = updated(70_000, metadata={"mood": "ok"}, conn="rest:edge-1")

    state, changes = apply(before, e)

    assert state == expect(before, e, idle=False, metadata={"mood": "ok"}, last_seen=70_000,
                           connections=(connection("c1", 0, channels=("room",), last_active=70_000,
                                                   timeout=FOREVER),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=70_000, status="online", previous="away"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=70_000, channel="room",
                      member=view(joined_at=10, last_seen=70_000, metadata={"mood": "ok"})),
    ]
    [sweep] = due_events(state, 130_000, "sweeper")
    assert sweep.event_id == "user.idled:u::130000"
    assert apply(state, sweep)[0].idle


def test_closing_the_most_active_connection_does_not_bring_back_a_swept_idle_deadline() -> None:
    # c1 went idle at 60_000; c2 woke the user at 70_000 and closed at 80_000. The idle deadline once
    # went back to 60_000, whose user.idled was already applied: the sweeper's new one was dropped as
    # a duplicate and the user stayed shown online for good.
    before, _ = run(opened("c1", 0, idle_after=IDLE, timeout=FOREVER), idled(IDLE, deadline=IDLE),
                    opened("c2", 70_000, idle_after=IDLE, timeout=FOREVER))
    assert not before.idle
    e = closed("c2", 80_000)

    state, changes = apply(before, e)

    assert changes == []
    assert state.connections == (connection("c1", 0, last_active=70_000, timeout=FOREVER),)
    [sweep] = due_events(state, 130_000, "sweeper")
    assert sweep.event_id == "user.idled:u::130000"
    assert apply(state, sweep)[0].idle


def test_auto_away_of_an_invisible_user_announces_nothing() -> None:
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10),
                    updated(20, status="invisible", visible=False))

    assert idle_events(before, 10**8) == []
    assert_noop(before, idled(10**8, deadline=IDLE + 20))


def test_presence_updated_online_while_auto_away_shows_the_user_online() -> None:
    # The chosen status is online already, but choosing it again is activity: it ends auto-away.
    before, _ = run(opened("c1", 0, idle_after=IDLE), joined("c1", "room", 10), idled(IDLE + 10, deadline=IDLE + 10))
    e = updated(70_000, status="online")

    state, changes = apply(before, e)

    assert state == expect(before, e, idle=False, last_seen=70_000,
                           connections=(connection("c1", 0, channels=("room",), last_active=70_000),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=70_000, status="online", previous="away"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=70_000, channel="room",
                      member=view(joined_at=10, last_seen=70_000)),
    ]
    assert idle_events(state, 130_000) == ["user.idled:u::130000"]

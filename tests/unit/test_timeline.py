"""The timeline projection (`streams.timeline`): small logs folded through `streams.replay.Tables`, each with
its sessions and status intervals written out by hand."""

from __future__ import annotations

from schemas.events import ConnectionTimedOut, EdgeLeased, Event, EventBatch, UserErased, UserForgotten
from schemas.state import Connection, UserPresence
from streams.replay import Step, Tables
from streams.timeline import Session, StatusInterval, Timeline, TimelineFold
from tests.unit.test_core import (
    EDGE,
    closed,
    dropped,
    heartbeat,
    idled,
    joined,
    left,
    opened,
    status_expired,
    timed_out,
    updated,
)


def timeline(*events: Event, user: str = "u", tables: Tables | None = None, start: int = 0) -> Timeline:
    """The events folded one record each, in order, at offsets `start`, `start` + 1, ..."""
    tables = Tables() if tables is None else tables
    fold = TimelineFold(user)
    for offset, event in enumerate(events, start):
        for step in tables.fold(0, offset, EventBatch(events=(event,))):
            fold.fold(step)
    return fold.timeline()


def session(conn: str, channel: str | None, start: int, end: int | None = None, reason: str | None = None, *,
            device: str | None = None, edge: str = EDGE) -> Session:
    return Session(connection_id=conn, edge_id=edge, device=device, channel=channel, start=start, end=end,
                   end_reason=reason)  # type: ignore[arg-type]


def status(name: str, start: int, end: int | None, cause: str, text: str | None = None,
           emoji: str | None = None) -> StatusInterval:
    return StatusInterval(status=name, status_text=text, status_emoji=emoji, start=start, end=end,
                          cause=cause)  # type: ignore[arg-type]


def forgotten(at: int, last_seen: int, user: str = "u") -> UserForgotten:
    return UserForgotten(event_id=f"user.forgotten:{user}:{last_seen}", user_id=user, connection_id="",
                         edge_id="sweeper", at=at, last_seen=last_seen)


def lease(at: int, ttl: int = 10_000) -> EdgeLeased:
    return EdgeLeased(event_id=f"lease@{at}", user_id="~p0", connection_id="", edge_id=EDGE, at=at, since=0,
                      ttl_ms=ttl)


TWO_DEVICES: list[Event] = [
    opened("c1", 1_000, device="web"), joined("c1", "room-1", 1_100),
    opened("c2", 2_000, device="ios"), joined("c2", "room-1", 2_100), joined("c2", "room-2", 2_200),
    left("c2", "room-2", 3_000), closed("c2", 4_000), closed("c1", 5_000),
]


def test_two_devices_each_with_its_connection_and_channel_sessions_and_a_channel_left() -> None:
    result = timeline(*TWO_DEVICES)

    assert result.sessions == (
        session("c1", None, 1_000, 5_000, "leave", device="web"),
        session("c1", "room-1", 1_100, 5_000, "leave", device="web"),
        session("c2", None, 2_000, 4_000, "leave", device="ios"),
        session("c2", "room-1", 2_100, 4_000, "leave", device="ios"),
        session("c2", "room-2", 2_200, 3_000, "leave", device="ios"),
    )
    # The second device changes nothing others see: one online interval, from the first connect to the last close.
    assert result.statuses == (status("online", 1_000, 5_000, "connect"), status("offline", 5_000, None, "disconnect"))


def test_a_dropped_connection_the_sweeper_times_out_after_the_grace_ends_with_timeout() -> None:
    result = timeline(
        opened("c1", 1_000), joined("c1", "room", 1_100), dropped("c1", 2_000, grace=5_000),
        timed_out("c1", 6_000, eid="early"),  # before the grace ran out: the fold refuses it, nothing ends
        timed_out("c1", 7_000),
    )

    assert result.sessions == (session("c1", None, 1_000, 7_000, "timeout"),
                               session("c1", "room", 1_100, 7_000, "timeout"))
    assert result.statuses == (status("online", 1_000, 7_000, "connect"), status("offline", 7_000, None, "disconnect"))


def test_the_sweeper_timing_out_a_connection_that_never_dropped_is_an_edge_failure() -> None:
    # The edge's lease vouches for c1 until 20 000 + 30 000; a sweep judged on an older lease is refused.
    result = timeline(
        lease(1_000), opened("c1", 1_000), joined("c1", "room", 1_100), lease(20_000),
        timed_out("c1", 31_000, eid="stale"), timed_out("c1", 50_000),
    )

    assert result.sessions == (session("c1", None, 1_000, 50_000, "edge_failure"),
                               session("c1", "room", 1_100, 50_000, "edge_failure"))
    assert result.statuses[-1] == status("offline", 50_000, None, "disconnect")


def test_a_timeout_the_connections_own_edge_wrote_is_a_timeout() -> None:
    silent = ConnectionTimedOut(event_id="silent", user_id="u", connection_id="c1", edge_id=EDGE, at=4_500,
                                alive_at=1_200)

    result = timeline(opened("c1", 1_000, timeout=3_000), joined("c1", "room", 1_200), silent)

    assert result.sessions == (session("c1", None, 1_000, 4_500, "timeout"),
                               session("c1", "room", 1_200, 4_500, "timeout"))


def test_updates_over_the_websocket_and_rest_and_going_invisible() -> None:
    result = timeline(
        opened("c1", 1_000), joined("c1", "room", 1_100),
        updated(2_000, status="busy", conn="c1"),
        updated(2_500, metadata={"name": "Ada"}, conn="c1"),  # nothing others see in the status: no interval
        updated(3_000, status="dnd", text="Focus", emoji="🎧", conn="rest:edge-1"),
        updated(4_000, status="invisible", visible=False, conn="c1"),
        updated(5_000, status="online", conn="rest:edge-1"),
    )

    assert result.statuses == (
        status("online", 1_000, 2_000, "connect"),
        status("busy", 2_000, 3_000, "user"),
        status("dnd", 3_000, 4_000, "rest", "Focus", "🎧"),
        status("offline", 4_000, 5_000, "user"),  # invisible: offline to others, no text shown
        status("online", 5_000, None, "rest", "Focus", "🎧"),  # the text stays: only the status was set
    )
    # Sessions are what the connections did: invisibility ends none of them.
    assert result.sessions == (session("c1", None, 1_000), session("c1", "room", 1_100))


def test_idle_then_activity() -> None:
    result = timeline(
        opened("c1", 1_000, idle_after=4_000),
        heartbeat("c1", 3_000),  # a bare heartbeat is no activity
        idled(4_500, 4_500),  # swept early: refused
        idled(5_000, 5_000), heartbeat("c1", 5_500),  # still away: a heartbeat without activity
        heartbeat("c1", 6_000, active_at=5_900),
    )

    assert result.statuses == (
        status("online", 1_000, 5_000, "connect"),
        status("away", 5_000, 6_000, "idle"),
        status("online", 6_000, None, "activity"),
    )


def test_a_status_with_an_expiry_reverts_to_online_without_its_text() -> None:
    result = timeline(
        opened("c1", 1_000),
        updated(2_000, status="busy", text="Lunch", expires_at=5_000, conn="c1"),
        status_expired(4_000, 4_000),  # a sweep before the expiry (a status set later moved it): refused
        status_expired(5_000, 5_000),
    )

    assert result.statuses == (
        status("online", 1_000, 2_000, "connect"),
        status("busy", 2_000, 5_000, "user", "Lunch"),
        status("online", 5_000, None, "expiry"),
    )


def test_a_forgotten_user_is_offline_by_forgetting_and_comes_back_afresh() -> None:
    result = timeline(
        opened("c1", 1_000, device="web"), updated(1_500, status="busy", conn="c1"), closed("c1", 2_000),
        forgotten(10_000, last_seen=2_000), opened("c2", 11_000),
    )

    assert result.sessions == (session("c1", None, 1_000, 2_000, "leave", device="web"), session("c2", None, 11_000))
    assert result.statuses == (
        status("online", 1_000, 1_500, "connect"),
        status("busy", 1_500, 2_000, "user"),
        status("offline", 2_000, 10_000, "disconnect"),
        status("offline", 10_000, 11_000, "forgotten"),
        status("online", 11_000, None, "connect"),  # forgotten: "busy" is not remembered
    )


def test_sessions_open_when_a_user_is_forgotten_end_with_reason_forgotten() -> None:
    # Today the core forgets only users without connections; an erasure may not wait: the projection is ready.
    connection = Connection(connection_id="c1", edge_id=EDGE, opened_at=1_000, last_heartbeat=1_000, timeout_ms=30_000,
                            channels=("room",))
    before = UserPresence(user_id="u", connections=(connection,), channel_since={"room": 1_100}, last_seen=1_100)
    fold = TimelineFold("u")

    fold.fold(Step(0, 7, 0, forgotten(9_000, 1_100), before, None, ()))

    assert fold.timeline().sessions == (session("c1", None, 1_000, 9_000, "forgotten"),
                                        session("c1", "room", 1_100, 9_000, "forgotten"))


def test_steps_that_change_nothing_and_other_users_steps_add_nothing() -> None:
    assert timeline(*TWO_DEVICES) == timeline(
        opened("v1", 500, "v"), *TWO_DEVICES[:3], TWO_DEVICES[2],  # the same connect twice: a duplicate
        joined("v1", "room-1", 2_050, "v"), *TWO_DEVICES[3:], closed("c1", 5_500),  # closed twice
    )


def test_a_window_keeps_what_overlaps_it_with_true_times_and_flags_what_it_cuts() -> None:
    whole = timeline(*TWO_DEVICES)

    cut = whole.window(4_000, 6_000)

    assert (cut.from_ms, cut.to_ms) == (4_000, 6_000)
    assert cut.sessions == (  # c2 ended at 4 000: before the window
        Session(connection_id="c1", edge_id=EDGE, device="web", channel=None, start=1_000, end=5_000,
                end_reason="leave", clipped=True),
        Session(connection_id="c1", edge_id=EDGE, device="web", channel="room-1", start=1_100, end=5_000,
                end_reason="leave", clipped=True),
    )
    assert [(i.status, i.start, i.end, i.clipped) for i in cut.statuses] == [
        ("online", 1_000, 5_000, True), ("offline", 5_000, None, True)]  # still open: not wholly inside
    inside = whole.window(1_000, 5_000)
    assert [(s.channel, s.start, s.clipped) for s in inside.sessions] == [
        (None, 1_000, False), ("room-1", 1_100, False), (None, 2_000, False), ("room-1", 2_100, False),
        ("room-2", 2_200, False)]
    assert [(i.status, i.clipped) for i in inside.statuses] == [("online", False)]  # offline starts at `to`
    assert whole.window(100, 1_000).sessions == () and whole.window(6_000, 9_000).sessions == ()


def test_a_fold_started_from_the_tables_of_a_snapshot_seeds_what_was_open() -> None:
    tables = Tables()
    for offset, event in enumerate(TWO_DEVICES[:5]):
        tables.fold(0, offset, EventBatch(events=(event,)))

    result = timeline(*TWO_DEVICES[5:], tables=tables, start=5)

    # The connections' true starts; a channel stay from the user's `channel_since`, not later than its
    # connection's opening: c2's stay in room-1, which c1 joined first, shows from c2's opening (2 000, not 2 100).
    assert result.sessions == (
        session("c1", None, 1_000, 5_000, "leave", device="web"),
        session("c1", "room-1", 1_100, 5_000, "leave", device="web"),
        session("c2", None, 2_000, 4_000, "leave", device="ios"),
        session("c2", "room-1", 2_000, 4_000, "leave", device="ios"),
        session("c2", "room-2", 2_200, 3_000, "leave", device="ios"),
    )
    assert result.statuses == (status("online", 3_000, 5_000, "log_start"),
                               status("offline", 5_000, None, "disconnect"))


def test_an_erased_users_timeline_keeps_nothing_from_before_the_erasure() -> None:
    erase = UserErased(event_id="erase", user_id="u", connection_id="rest:e", edge_id="e", at=3_000)
    erased = timeline(
        opened("c1", 1_000, device="web"), joined("c1", "room-1", 1_100), updated(1_500, status="busy", conn="c1"),
        erase, heartbeat("c1", 3_100), dropped("c1", 3_200),
    )
    back = timeline(opened("c1", 1_000), joined("c1", "room-1", 1_100), erase, opened("c2", 4_000, device="ios"))

    assert (erased.sessions, erased.statuses, erased.erased_at) == ((), (), 3_000)
    assert back.sessions == (session("c2", None, 4_000, device="ios"),)
    assert back.statuses == (status("online", 4_000, None, "connect"),)

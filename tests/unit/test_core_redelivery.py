"""Redelivery and stored-status cases found by property tests; each once failed against the core."""

from __future__ import annotations

from schemas.changes import UserCameOnline
from streams.core import apply
from tests.unit.test_core import assert_noop, closed, joined, left, opened, run, updated


def test_status_set_while_offline_is_shown_when_coming_online() -> None:
    offline_away, _ = run(opened("c1", 0), closed("c1", 10), updated(20, status="away"))
    e = opened("c2", 30)  # no status asked for: the stored one is kept

    state, changes = apply(offline_away, e)

    assert state.status == "away"
    assert changes == [UserCameOnline(change_id=f"{e.event_id}/0", user_id="u", at=30, status="away")]


def test_redelivering_an_update_that_was_a_noop_changes_nothing() -> None:
    away_again = updated(10, status="away")  # a no-op: the user is already away
    back = updated(20, status="online")
    state, _ = run(opened("c1", 0, status="away"), away_again, back)
    assert state.status == "online"

    # at-least-once: the worker redoes [away_again, back] from a state that already has both
    assert_noop(state, away_again)
    again, _ = run(away_again, back, state=state)
    assert again.status == "online"


def test_redelivering_a_leave_that_was_a_noop_keeps_the_later_join() -> None:
    stray_leave = left("c1", "room", 10)  # a no-op: c1 was not in room
    join = joined("c1", "room", 20)
    state, _ = run(opened("c1", 0), stray_leave, join)

    again, changes = run(stray_leave, join, state=state)

    assert changes == []
    assert again == state

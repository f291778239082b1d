"""Users gone: a user offline for longer than the retention is forgotten (`user.forgotten`)."""

from __future__ import annotations

from schemas.events import UserForgotten
from schemas.state import UserPresence
from streams.core import apply, due_events
from tests.unit.test_core import closed, heartbeat, opened, run, updated

RETENTION = 30 * 24 * 3600 * 1000


def forget_events(state, now: int) -> list[UserForgotten]:  # type: ignore[no-untyped-def]
    return [e for e in due_events(state, now, "sweeper", RETENTION) if isinstance(e, UserForgotten)]


def test_a_user_offline_for_the_retention_is_forgotten_in_two_steps_one_retention_apart() -> None:
    state, _ = run(opened("c1", 1_000), updated(2_000, metadata={"name": "Ann"}), closed("c1", 3_000))

    assert forget_events(state, 3_000 + RETENTION - 1) == []
    assert due_events(state, 3_000 + RETENTION * 10, "sweeper") == []  # no retention given: never
    [forget] = forget_events(state, 3_000 + RETENTION)
    assert (forget.last_seen, forget.at) == (3_000, 3_000 + RETENTION)
    marker, changes = apply(state, forget)
    assert changes == [] and marker == UserPresence(user_id="u", last_seen=3_000 + RETENTION, forgotten=True)

    assert forget_events(marker, 3_000 + 2 * RETENTION - 1) == []
    assert apply(marker, forget) == (marker, [])  # a late copy of the first names the older last_seen
    [again] = forget_events(marker, 3_000 + 2 * RETENTION)
    assert again.event_id != forget.event_id
    assert apply(marker, again) == (None, [])


def test_a_forgotten_user_who_comes_back_starts_afresh() -> None:
    state, _ = run(opened("c1", 1_000), updated(2_000, metadata={"name": "Ann"}), closed("c1", 3_000))
    [forget] = forget_events(state, 3_000 + RETENTION)
    marker, _ = apply(state, forget)

    back, changes = run(opened("c2", 4_000 + RETENTION), state=marker)
    fresh, fresh_changes = run(opened("c2", 4_000 + RETENTION))
    assert (back, changes) == (fresh, fresh_changes)
    assert back is not None and back.metadata == {} and not back.forgotten


def test_a_user_who_came_back_or_is_online_is_not_forgotten() -> None:
    gone, _ = run(opened("c1", 1_000), closed("c1", 3_000))
    [forget] = forget_events(gone, 3_000 + RETENTION)
    back, _ = run(opened("c2", 3_000 + RETENTION - 5), closed("c2", 3_000 + RETENTION - 1), state=gone)
    online, _ = run(opened("c3", 1_000, timeout=RETENTION * 2), heartbeat("c3", 2_000))

    assert forget_events(online, 2_000 + RETENTION) == []
    assert apply(back, forget) == (back, [])  # the sweep saw an older offline spell
    assert apply(online, forget) == (online, [])
    assert apply(None, forget) == (None, [])

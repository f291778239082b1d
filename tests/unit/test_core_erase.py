"""Erasure: a user who asked to be erased (`user.erased`, rule 7 of streams/core.py) leaves every channel,
goes offline, and keeps nothing but a marker with the log position."""

from __future__ import annotations

from schemas.changes import MemberLeft, UserWentOffline
from schemas.events import UserErased, UserForgotten
from schemas.state import UserPresence
from streams.core import apply, apply_at, due_events, user_view
from tests.unit.test_core import (
    closed,
    dropped,
    heartbeat,
    joined,
    opened,
    run,
    timed_out,
    typing_started,
    updated,
)

RETENTION = 30 * 24 * 3600 * 1000


def erased(at: int, user: str = "u", eid: str | None = None) -> UserErased:
    return UserErased(event_id=eid or f"erased@{at}", user_id=user, connection_id="rest:edge-1", edge_id="edge-1",
                      at=at)


def present() -> UserPresence:
    state, _ = run(
        opened("c1", 1_000, device="web", metadata={"name": "Ann"}), opened("c2", 1_100, device="ios"),
        joined("c1", "a", 1_200), joined("c2", "b", 1_300), typing_started("c1", "a", 1_400, 7_000),
        updated(1_500, status="busy", text="in a meeting"),
    )
    return state


def test_an_erased_user_leaves_every_channel_and_goes_offline_keeping_only_a_marker() -> None:
    state = present()
    marker, changes = apply(state, erased(2_000))

    assert marker == UserPresence(user_id="u", last_seen=2_000, forgotten=True)
    assert [(type(c), getattr(c, "channel", None), c.at) for c in changes] == [
        (MemberLeft, "a", 2_000), (MemberLeft, "b", 2_000), (UserWentOffline, None, 2_000)]
    assert {c.reason for c in changes if isinstance(c, MemberLeft | UserWentOffline)} == {"leave"}
    assert [c.change_id for c in changes] == [f"erased@2000/{n}" for n in range(3)]
    view = user_view(marker)
    assert (view.metadata, view.status_text, view.online, view.devices) == ({}, None, False, ())


def test_erasing_an_offline_unknown_or_forgotten_user_leaves_a_marker_and_announces_nothing() -> None:
    offline, _ = run(opened("c1", 1_000, metadata={"name": "Ann"}), closed("c1", 1_500))
    marker = UserPresence(user_id="u", last_seen=2_000, forgotten=True)

    assert apply(offline, erased(2_000)) == (marker, [])
    assert apply(None, erased(2_000)) == (marker, [])
    assert apply(marker, erased(2_000)) == (marker, [])  # the same erasure again
    assert apply(marker, erased(3_000, eid="again")) == (UserPresence(user_id="u", last_seen=3_000, forgotten=True),
                                                          [])


def test_stray_events_of_the_closed_connections_do_not_bring_the_user_back() -> None:
    marker, _ = apply(present(), erased(2_000))

    for stray in (heartbeat("c1", 2_100, active_at=2_050), dropped("c1", 2_200), closed("c2", 2_300),
                  timed_out("c1", 60_000), joined("c1", "a", 2_400)):
        assert apply(marker, stray) == (marker, []), stray


def test_an_erased_user_who_comes_back_starts_afresh() -> None:
    marker, _ = apply(present(), erased(2_000))

    back, changes = run(opened("c3", 3_000), state=marker)
    fresh, fresh_changes = run(opened("c3", 3_000))
    assert (back, changes) == (fresh, fresh_changes)
    assert back.metadata == {} and back.status == "online" and back.status_text is None
    again, _ = run(updated(3_000, metadata={"name": "New"}), state=marker)  # an update is a new fact too
    assert not again.forgotten and again.metadata == {"name": "New"}


def test_a_redo_from_before_the_erasure_skips_by_position() -> None:
    state: UserPresence | None = None
    log = [opened("c1", 1_000, metadata={"name": "Ann"}), joined("c1", "a", 1_100), erased(2_000)]
    for offset, event in enumerate(log):
        state, _ = apply_at(state, event, offset, 0)
    assert state is not None and state.forgotten and state.applied_offset == 2
    for offset, event in enumerate(log):  # a failover redoes the partition from an older commit
        assert apply_at(state, event, offset, 0) == (state, [])


def test_the_marker_is_forgotten_one_retention_after_the_erasure() -> None:
    marker, _ = apply(present(), erased(2_000))

    assert [e for e in due_events(marker, 2_000 + RETENTION - 1, "sweeper", RETENTION)] == []
    [forget] = due_events(marker, 2_000 + RETENTION, "sweeper", RETENTION)
    assert isinstance(forget, UserForgotten) and forget.last_seen == 2_000
    assert apply(marker, forget) == (None, [])


def test_a_repeated_erasure_of_a_user_back_since_is_not_applied_twice() -> None:
    state = present()
    first = erased(2_000)
    marker, _ = apply(state, first)
    back, _ = run(opened("c3", 3_000), state=marker)
    erased_again, _ = apply(back, first)  # the id is not remembered by the fresh state: applied again
    assert erased_again.forgotten
    same, changes = apply(state, erased(2_000, eid=state.recent_event_ids[-1]))
    assert (same, changes) == (state, [])  # an id the user's state remembers is a duplicate

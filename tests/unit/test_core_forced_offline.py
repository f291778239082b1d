"""A service forces a user offline (`user.forced_offline`, rule 8 of streams/core.py): every connection
ends at once, as a clean close of each; the replay folds it like the live processor."""

from __future__ import annotations

from schemas.changes import MemberLeft, UserWentOffline
from schemas.events import EventBatch, UserForcedOffline
from streams.core import apply, user_view
from streams.replay import Tables, state_hash
from streams.timeline import end_reason
from tests.unit.test_core import closed, heartbeat, joined, opened, run, timed_out, typing_started
from tests.unit.test_core_erase import erased, present


def forced(at: int, user: str = "u", eid: str | None = None) -> UserForcedOffline:
    return UserForcedOffline(event_id=eid or f"forced@{at}", user_id=user, connection_id="rest:edge-1",
                             edge_id="edge-1", at=at, service="backend", reason="suspended")


def test_every_connection_ends_at_once_and_every_channel_is_left() -> None:
    state = present()
    after, changes = apply(state, forced(2_000))

    assert after is not None
    assert (after.connections, after.typing, after.channel_since, after.last_seen) == ((), {}, {}, 2_000)
    assert [(type(c), getattr(c, "channel", None), c.at) for c in changes] == [
        (MemberLeft, "a", 2_000), (MemberLeft, "b", 2_000), (UserWentOffline, None, 2_000)]
    assert {c.reason for c in changes if isinstance(c, MemberLeft | UserWentOffline)} == {"leave"}
    # Unlike an erasure, the user keeps its status and metadata: it is only offline.
    view = user_view(after)
    assert (view.online, view.last_seen, view.metadata) == (False, 2_000, {"name": "Ann"})


def test_it_is_the_same_as_closing_each_connection() -> None:
    state = present()
    by_force, _ = apply(state, forced(2_000))
    by_close, _ = run(closed("c1", 2_000), closed("c2", 2_000), state=state)

    assert by_force is not None
    assert (by_force.connections, by_force.last_seen, by_force.channel_since) == (
        by_close.connections, by_close.last_seen, by_close.channel_since)


def test_an_offline_user_or_a_repeat_changes_nothing() -> None:
    offline, _ = run(opened("c1", 1_000), closed("c1", 1_500))
    after, changes = apply(offline, forced(2_000))
    assert changes == [] and after is not None and after.last_seen == 1_500

    state = present()
    once, _ = apply(state, forced(2_000))
    assert apply(once, forced(2_000)) == (once, [])  # the same event again: a duplicate id


def test_the_user_comes_back_with_a_new_connection() -> None:
    state, _ = run(opened("c1", 1_000), joined("c1", "a", 1_100), forced(2_000), opened("c2", 3_000),
                   heartbeat("c1", 3_100))
    assert [c.connection_id for c in state.connections] == ["c2"]  # the old connection's heartbeat is stray


def test_the_state_names_the_connections_it_ended() -> None:
    after, _ = apply(present(), forced(2_000))
    assert after is not None and after.forced_offline_connections == ("c1", "c2")


def test_they_stay_named_until_a_forced_offline_ends_others() -> None:
    # Back on c3, which times out: c3 is not named, so an edge tells its end from a forced one.
    state, _ = run(opened("c1", 1_000), forced(2_000), opened("c3", 3_000), timed_out("c3", 40_000))
    assert (state.connections, state.forced_offline_connections) == ((), ("c1",))
    # A forced offline that ends nothing changes nothing; one that ends c4 names c4 alone.
    again, _ = run(forced(41_000), opened("c4", 42_000), forced(43_000), state=state)
    assert again.forced_offline_connections == ("c4",)


def test_a_forgotten_or_erased_user_starts_with_none_named() -> None:
    state, _ = run(opened("c1", 1_000), forced(2_000))
    marker, _ = apply(state, erased(3_000))
    assert marker is not None and marker.forgotten and marker.forced_offline_connections == ()
    back, _ = run(opened("c2", 4_000), state=marker)
    assert back.forced_offline_connections == ()


def test_the_replay_folds_it_into_its_hash() -> None:
    log = [opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, 5_000)]
    live, forced_out = Tables(), Tables()
    live.fold(0, 0, EventBatch(events=tuple(log)))
    forced_out.fold(0, 0, EventBatch(events=(*log, forced(100))))

    assert forced_out.users["u"].connections == () and forced_out.channels["room"].members == ()
    assert forced_out.users["u"].forced_offline_connections == ("c1",)
    assert state_hash(live.users.values(), live.channels.values()) != state_hash(
        forced_out.users.values(), forced_out.channels.values())


def test_the_timeline_ends_its_sessions_as_a_leave() -> None:
    state = present()
    assert {end_reason(forced(2_000), c) for c in state.connections} == {"leave"}

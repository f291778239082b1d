"""The reference model (`tests/oracle.py`) agrees with the core: on hand-written logs, where the
expected views are also spelled out, and on random logs, after every event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import encode
from schemas.events import Event, EventBatch, UserErased
from schemas.state import UserPresence
from streams.core import RECENT_EVENT_IDS, apply, due_events, user_view
from tests import oracle
from tests.unit.test_core import (
    closed,
    dropped,
    heartbeat,
    idled,
    joined,
    left,
    opened,
    status_expired,
    timed_out,
    typing_started,
    typing_stopped,
    updated,
)
from tests.unit.test_core_properties import build_log, logs_steps


def core_views(log: list[Event]) -> dict[str, dict[str, Any]]:
    states: dict[str, UserPresence] = {}
    for e in log:
        states[e.user_id], _ = apply(states.get(e.user_id), e)
    return {user: oracle.published_view(user_view(state)) for user, state in states.items()}


def model_views(log: list[Event]) -> dict[str, dict[str, Any]]:
    return {user: oracle.expected_view(expected) for user, expected in oracle.fold(log).items()}


def test_the_model_remembers_as_many_event_ids_as_the_core() -> None:
    assert oracle.REMEMBERED_IDS == RECENT_EVENT_IDS


def test_two_devices_a_drop_and_a_timeout() -> None:
    log = [
        opened("c1", 0, device="web", metadata={"name": "Ada"}),
        opened("c2", 1_000, device="ios"),
        joined("c1", "room", 2_000),
        dropped("c2", 3_000, grace=5_000),
        timed_out("c2", 7_000),  # before the grace is over: ignored
        timed_out("c2", 8_000, eid="timed_out:c2@8000b"),
    ]
    expected = {
        "status": "online", "online": True, "last_seen": 3_000, "connections": 1, "devices": ("web",),
        "metadata": {"name": "Ada"}, "status_metadata": {}, "status_text": None, "status_emoji": None,
        "status_expires_at": None,
    }

    assert model_views(log) == core_views(log) == {"u": expected}
    assert oracle.expected_members(oracle.fold(log)) == {"room": {"u"}}


def test_invisible_user_looks_offline_and_keeps_its_last_seen() -> None:
    log = [
        opened("c1", 0, device="web"),
        updated(1_000, status="invisible", visible=False, text="away for a bit"),
        joined("c1", "room", 2_000),
        closed("c1", 3_000),
    ]
    model = model_views(log)

    assert model == core_views(log)
    assert model["u"]["status"] == "offline" and model["u"]["last_seen"] == 1_000
    assert model["u"]["devices"] == () and model["u"]["status_text"] is None


def test_auto_away_ends_only_with_newer_activity() -> None:
    log = [
        opened("c1", 0, idle_after=1_000),
        heartbeat("c1", 700, active_at=600),
        idled(1_700, 1_600),
        heartbeat("c1", 2_000, active_at=500),  # older than the last activity: still away
    ]
    assert model_views(log)["u"]["status"] == "away"
    assert model_views(log) == core_views(log)

    woken = [*log, heartbeat("c1", 2_500, active_at=2_400)]
    assert model_views(woken)["u"]["status"] == "online"
    assert model_views(woken) == core_views(woken)

    # An update that changes nothing is still activity while away.
    same_again = [*log, updated(2_500, status="online")]
    assert model_views(same_again)["u"]["status"] == "online"
    assert model_views(same_again) == core_views(same_again)


def test_status_expiry_and_a_status_text() -> None:
    log = [
        opened("c1", 0),
        updated(1_000, status="busy", text="call", emoji="📞", expires_at=5_000, metadata={"k": 1}),
        status_expired(4_000, 4_000),  # a stale sweep: too early for this status
    ]
    assert model_views(log)["u"]["status_expires_at"] == 5_000
    assert model_views(log) == core_views(log)

    expired = [*log, status_expired(5_000, 5_000)]
    assert model_views(expired)["u"]["status"] == "online"
    assert model_views(expired)["u"]["status_text"] is None
    assert model_views(expired) == core_views(expired)


def test_typing_counts_as_activity_and_redeliveries_change_nothing() -> None:
    log = [
        opened("c1", 0, idle_after=1_000),
        joined("c1", "room", 100),
        left("c1", "room", 200),
        joined("c1", "room", 300, eid="rejoin"),
        typing_started("c1", "room", 400, 6_000),
        typing_stopped("c1", "room", 700),
        idled(1_700, 1_700),
    ]
    redelivered = [*log, *log[1:5]]  # a worker redoes what it did since its last commit

    assert model_views(log) == model_views(redelivered) == core_views(redelivered)
    assert model_views(log)["u"]["status"] == "away" and model_views(log)["u"]["last_seen"] == 700


def test_an_id_older_than_the_window_is_applied_again_like_the_core_does() -> None:
    first = joined("c1", "room", 10, eid="old")
    log = [opened("c1", 0), first, left("c1", "room", 20)]
    log += [updated(100 + n, metadata={"n": n}, eid=f"m{n}") for n in range(RECENT_EVENT_IDS)]
    log.append(first)  # forgotten by now: it joins again
    folded = oracle.fold(log)

    assert folded["u"].channels() == {"room"}
    assert model_views(log) == core_views(log)


def test_events_of_skips_undecodable_records() -> None:
    batch = EventBatch(events=(opened("c1", 0), joined("c1", "room", 1)))

    events = oracle.events_of([encode(batch), b"{not json", b'{"events": [{"type": "nope"}]}'])

    assert events == list(batch.events)


@settings(max_examples=200, deadline=None)
@given(logs_steps)
def test_model_and_core_agree_after_every_event(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    log = build_log(steps)
    states: dict[str, UserPresence] = {}
    model: dict[str, oracle.Expected] = {}
    for e in log:
        states[e.user_id], _ = apply(states.get(e.user_id), e)
        oracle.step(model.setdefault(e.user_id, oracle.Expected(user_id=e.user_id)), e)
        state, expected = states[e.user_id], model[e.user_id]
        assert oracle.expected_view(expected) == oracle.published_view(user_view(state)), e
        # The sweeper's work depends on what the model tracks beyond the view: deadlines and expiries.
        assert {c.connection_id: c.deadline for c in state.connections} == {
            cid: c.deadline() for cid, c in expected.conns.items()
        }
        assert state.typing == expected.typing
        assert state.idle == expected.idle
        assert any(d.type == "user.idled" for d in due_events(state, 10**12, "s")) == (expected.idle_at() is not None)


def erased(at: int, user: str = "u", eid: str | None = None) -> UserErased:
    return UserErased(event_id=eid or f"erased@{at}", user_id=user, connection_id="rest:e", edge_id="e", at=at)


def test_an_erased_user_is_gone_stray_events_keep_it_gone_and_a_new_connection_starts_it_afresh() -> None:
    log = [
        opened("c1", 0, device="web", metadata={"name": "Ada"}),
        joined("c1", "room", 100),
        updated(200, status="busy", text="meeting"),
        erased(1_000),
        heartbeat("c1", 1_100),
        dropped("c1", 1_200),
    ]
    folded = oracle.fold(log)
    assert folded["u"].gone and folded["u"].last_seen == 1_000 and oracle.expected_members(folded) == {}
    assert model_views(log) == core_views(log)

    log += [opened("c2", 2_000), joined("c2", "room", 2_100)]
    folded = oracle.fold(log)
    assert not folded["u"].gone and folded["u"].metadata == {} and folded["u"].status_text is None
    assert oracle.expected_members(folded) == {"room": {"u"}}
    assert model_views(log) == core_views(log)


@settings(max_examples=150, deadline=None)
@given(logs_steps, st.lists(st.tuples(st.integers(min_value=0, max_value=80), st.sampled_from(("u1", "u2"))),
                            max_size=3))
def test_model_and_core_agree_with_erasures_anywhere(steps: list[tuple[int, tuple[Any, ...]]],
                                                     erasures: list[tuple[int, str]]) -> None:
    log = build_log(steps)
    # Erasures cut into the log: the events after one were made from the state before it, so the
    # erased user's connections go on writing (the stray events an edge may send until it closes them).
    for n, user in sorted(erasures, reverse=True):
        place = min(n, len(log))
        log.insert(place, erased(log[place - 1].at if place else 0, user, eid=f"erased-{n}-{user}"))
    states: dict[str, UserPresence | None] = {}
    model: dict[str, oracle.Expected] = {}
    for e in log:
        states[e.user_id], _ = apply(states.get(e.user_id), e)
        oracle.take(model, e, {})
        state, expected = states[e.user_id], model.get(e.user_id)
        assert (state is None) == (expected is None), e
        if state is None or expected is None:
            continue
        assert state.forgotten == expected.gone, e
        assert oracle.expected_view(expected) == oracle.published_view(user_view(state)), e
        assert {c.connection_id: c.deadline for c in state.connections} == {
            cid: c.deadline() for cid, c in expected.conns.items()
        }
        assert state.typing == expected.typing

"""A redo longer than the id rings changes nothing: the cores skip what their log position says was applied.

After kill -9 failovers a worker's committed offset can stay behind for many seconds, so the redo of
a partition can hold more of one user's events than `recent_event_ids` remembers (64), or more of a
channel's changes than `recent_change_ids` does (256). Redone through the ring alone, the oldest is
applied again and pushes the next one out, so the whole redo takes effect a second time: old
statuses come back under new seqs (seen in the kill tests, docs/reliability.md). Each control below
shows the ring alone failing on the same redo.
"""

from __future__ import annotations

from schemas.changes import MemberChange
from schemas.events import ConnectionOpened, PresenceUpdated
from schemas.state import ChannelState, UserPresence
from streams.channels import RECENT_CHANGE_IDS, apply_member_change, apply_member_change_at
from streams.core import RECENT_EVENT_IDS, apply, apply_at
from tests.unit.test_channels import join, update

LONG_REDO = 3 * RECENT_EVENT_IDS


def user_log() -> list[ConnectionOpened | PresenceUpdated]:
    opened = ConnectionOpened(event_id="open", user_id="ann", connection_id="c1", edge_id="e", at=1,
                              timeout_ms=30_000)
    return [opened, *(PresenceUpdated(event_id=f"u{n}", user_id="ann", connection_id="c1", edge_id="e", at=2 + n,
                                      status=("away", "busy")[n % 2], metadata={"n": n}) for n in range(LONG_REDO))]


def fold_user(log: list[ConnectionOpened | PresenceUpdated]) -> UserPresence:
    state: UserPresence | None = None
    for offset, event in enumerate(log):
        state, _ = apply_at(state, event, offset, 0)
    assert state is not None
    return state


def test_a_user_redo_longer_than_the_event_id_ring_changes_nothing() -> None:
    log = user_log()
    final = fold_user(log)
    state: UserPresence | None = final
    for offset, event in enumerate(log):
        state, changes = apply_at(state, event, offset, 0)
        assert changes == [], offset
    assert state == final and final.metadata == {"n": LONG_REDO - 1}


def test_control_the_event_id_ring_alone_applies_a_long_redo_again() -> None:
    log = user_log()
    state: UserPresence | None = fold_user(log)
    replayed = []
    for event in log:
        state, changes = apply(state, event)
        replayed += changes
    assert replayed  # old statuses and metadata announced again


def test_events_of_one_record_are_told_apart_by_their_place_in_it() -> None:
    opened, first, second = user_log()[:3]
    state, _ = apply_at(None, opened, 7, 0)
    state, _ = apply_at(state, first, 8, 0)
    state, changes = apply_at(state, second, 8, 1)
    assert changes and state is not None and state.metadata == {"n": 1}
    assert (state.applied_offset, state.applied_index) == (8, 1)
    again, changes = apply_at(state, first, 8, 0)
    assert again is state and changes == []


def channel_log() -> list[MemberChange]:
    statuses = ("away", "busy")
    return [join("u1", 10), *(update("u1", 11 + n, status=statuses[n % 2]) for n in range(3 * RECENT_CHANGE_IDS))]


def test_a_channel_redo_longer_than_the_change_id_ring_changes_nothing() -> None:
    log = channel_log()
    state: ChannelState | None = None
    for offset, change in enumerate(log):
        state, _ = apply_member_change_at(state, change, offset)
    final = state
    assert final is not None and final.applied_offset == len(log) - 1
    for offset, change in enumerate(log):
        state, view = apply_member_change_at(state, change, offset)
        assert view is None, offset
    assert state == final


def test_control_the_change_id_ring_alone_publishes_a_long_redo_again() -> None:
    log = channel_log()
    state: ChannelState | None = None
    for offset, change in enumerate(log):
        state, _ = apply_member_change_at(state, change, offset)
    views = []
    for change in log:
        state, view = apply_member_change(state, change)
        views += [view] if view is not None else []
    assert views  # old statuses under new seqs

"""Redos change nothing: the cores skip what log positions say was applied.

After kill -9 failovers a worker's committed offset can stay behind for many seconds, so the redo of
a partition can hold more of one user's events than `recent_event_ids` remembers (64), or more of a
channel's changes than a ring of change ids did (256). Redone through a ring alone, the oldest is
applied again and pushes the next one out, so the whole redo takes effect a second time: old
statuses come back under new seqs (seen in the kill tests, docs/reliability.md, defect F).

The user stage's redo also writes changes again. Faust writes a table's changelog after what the
agent sent, so a worker killed in between leaves the changes in the log and the state that caused
them unsaved; its successor redoes those events from the older state and writes the same changes at
later offsets of `presence.channel-changes`, possibly hundreds of the channel's changes later.
They carry the same `source` (where their event is in `presence.events`), and the channel stage
drops them by it. Each control shows the same redo without the position taking effect again.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.changes import ChannelView, MemberChange
from schemas.events import ChannelJoined, ChannelLeft, ConnectionOpened, Event, PresenceUpdated, UserForgotten
from schemas.state import ChannelState, UserPresence
from streams.channels import DEPARTED_SOURCE_HOLD_MS, apply_member_change, apply_member_change_at
from streams.core import RECENT_EVENT_IDS, apply, apply_at
from tests.unit.test_channels import CHANNEL, join, leave, update

LONG_REDO = 3 * RECENT_EVENT_IDS
LONG_CHANNEL_REDO = 768

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


def test_a_redo_across_a_forget_does_not_bring_the_user_back() -> None:
    """A user offline long enough is forgotten. Had that deleted its state, a redo starting before
    the forget would find nothing saying its events were applied: the first one that changed nothing
    the first time (an update repeating the last) would create the user again, and the forget, naming
    the old `last_seen`, would no longer match (defect H, seen in a long kill run: 20 s retention,
    commits tens of seconds behind). The first forget leaves a marker that keeps the position."""
    rest = {"user_id": "bot", "connection_id": "rest:1", "edge_id": "e"}
    log: list[Event] = [
        PresenceUpdated(event_id="u1", at=1_000, status_text="posting", **rest),
        PresenceUpdated(event_id="u2", at=5_000, status_text="posting", **rest),  # the same again: no change
        UserForgotten(event_id="forget", user_id="bot", connection_id="", edge_id="sweeper", at=30_000,
                      last_seen=1_000),
    ]
    state: UserPresence | None = None
    for offset, event in enumerate(log):
        state, _ = apply_at(state, event, offset, 0)
    assert state is not None and state.forgotten
    marker = state
    for offset, event in enumerate(log[1:], 1):  # the redo, from a commit before the second update
        state, changes = apply_at(state, event, offset, 0)
        assert changes == []
    assert state == marker


def test_control_without_the_marker_the_redo_brings_the_user_back() -> None:
    rest = {"user_id": "bot", "connection_id": "rest:1", "edge_id": "e"}
    again = PresenceUpdated(event_id="u2", at=5_000, status_text="posting", **rest)
    state, _ = apply_at(None, again, 1, 0)  # what a deleted state leaves the redo
    assert state is not None and not state.forgotten and state.last_seen == 5_000


def channel_log() -> list[MemberChange]:
    statuses = ("away", "busy")
    return [join("u1", 10), *(update("u1", 11 + n, status=statuses[n % 2]) for n in range(LONG_CHANNEL_REDO))]


def fold_channel(state: ChannelState | None, changes: list[MemberChange], first_offset: int = 0
                 ) -> tuple[ChannelState | None, list[ChannelView]]:
    views = []
    for offset, change in enumerate(changes, first_offset):
        state, view = apply_member_change_at(state, change, offset)
        views += [view] if view is not None else []
    return state, views


def test_a_channel_redo_of_its_own_records_changes_nothing() -> None:
    log = channel_log()
    final, _ = fold_channel(None, log)
    assert final is not None and final.applied_offset == len(log) - 1
    state, views = fold_channel(final, log)
    assert views == [] and state == final


def member_events(user: str, first_at: int, updates: int) -> list[Event]:
    """`user` joins the channel, changes status `updates` times, leaves it."""
    common = {"user_id": user, "connection_id": f"{user}-c", "edge_id": "e"}
    return [
        ConnectionOpened(event_id=f"{user}-open", at=first_at, timeout_ms=600_000, **common),
        ChannelJoined(event_id=f"{user}-join", at=first_at + 1, channel=CHANNEL, **common),
        *(PresenceUpdated(event_id=f"{user}-u{n}", at=first_at + 2 + n, status=("away", "busy")[n % 2], **common)
          for n in range(updates)),
        ChannelLeft(event_id=f"{user}-leave", at=first_at + 2 + updates, channel=CHANNEL, **common),
    ]


def user_stage(state: UserPresence | None, events: list[Event], first_offset: int
               ) -> tuple[UserPresence | None, list[MemberChange]]:
    """What the user stage writes to `presence.channel-changes` for `events` at consecutive offsets."""
    written: list[MemberChange] = []
    for offset, event in enumerate(events, first_offset):
        state, changes = apply_at(state, event, offset, 0)
        written += [c for c in changes if isinstance(c, MemberChange)]
    return state, written


def copies_after_a_long_redo(strip_sources: bool = False) -> tuple[list[MemberChange], ChannelState, list[ChannelView]]:
    """Ann's changes in the channel, then Bob's 300, then the copies Ann's redo writes, from the state
    saved before her join: her join, every update and her leave, once more."""
    ann = member_events("ann", 1_000, 20)
    _, first = user_stage(None, ann, first_offset=100)
    assert {type(c).__name__ for c in first} == {"MemberJoined", "MemberUpdated", "MemberLeft"}
    saved, _ = user_stage(None, ann[:1], first_offset=100)
    _, again = user_stage(saved, ann[1:], first_offset=101)
    assert again == first  # the same changes, with the same ids and sources
    if strip_sources:
        again = [replace(c, source=None) for c in again]
    _, bob = user_stage(None, member_events("bob", 2_000, 300), first_offset=5_000)
    before, _ = fold_channel(None, first + bob)
    assert before is not None
    state, views = fold_channel(before, again, first_offset=len(first + bob))
    assert state is not None
    return again, state, views


def test_changes_the_user_stage_writes_again_change_nothing() -> None:
    again, state, views = copies_after_a_long_redo()
    assert len(again) > 20
    assert views == []
    assert "ann" not in {m.user_id for m in state.members}


def test_control_copies_without_their_source_are_applied_again() -> None:
    _, state, views = copies_after_a_long_redo(strip_sources=True)
    assert views  # ann joins again and her old statuses are announced under new seqs


def test_a_departed_users_source_is_forgotten_after_the_hold() -> None:
    gone, _ = fold_channel(None, [join("ann", 10), leave("ann", 20), join("bob", 30)])
    assert gone is not None and "ann" in gone.applied_sources
    later, _ = fold_channel(gone, [update("bob", 20 + DEPARTED_SOURCE_HOLD_MS, status="away")], first_offset=3)
    assert later is not None and set(later.applied_sources) == {"bob"}


def test_control_without_positions_a_channels_redo_is_applied_again() -> None:
    final, _ = fold_channel(None, channel_log())
    views = []
    for change in channel_log():
        final, view = apply_member_change(final, replace(change, source=None))
        views += [view] if view is not None else []
    assert views  # old statuses under new seqs

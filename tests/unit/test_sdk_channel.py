"""The SDK's channel fold (clients/python/presence_client/channel.py), one test per rule."""

from __future__ import annotations

from typing import Any

from presence_client import (
    ChannelView,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    Resumed,
    Resynced,
    TypingChanged,
)


def member(user_id: str, status: str = "online", **fields: Any) -> dict[str, Any]:
    return {"user_id": user_id, "status": status, "status_text": None, "status_emoji": None, "connections": 1,
            "devices": [], "joined_at": 1, "last_seen": 1, "metadata": {}, "status_metadata": {}, **fields}


def snapshot(seq: int, *members: dict[str, Any], typing: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "presence.snapshot", "channel": "lobby", "seq": seq, "occupancy": len(members),
            "members": list(members), "typing": list(typing)}


def diff(seq: int, occupancy: int, joins: tuple[dict[str, Any], ...] = (), leaves: tuple[str, ...] = (),
         updates: tuple[dict[str, Any], ...] = (), typing: tuple[str, ...] = (), kind: str = "presence.diff",
         **extra: Any) -> dict[str, Any]:
    return {"type": kind, "channel": "lobby", "seq": seq, "occupancy": occupancy, "joins": list(joins),
            "leaves": [{"user_id": u, "reason": "leave", "last_seen": 5} for u in leaves],
            "updates": list(updates), "typing": list(typing), **extra}


def held(seq: int = 10) -> ChannelView:
    view = ChannelView("lobby")
    view.apply(snapshot(seq, member("alice")))
    return view


def test_a_first_snapshot_sets_the_view_and_reports_nothing() -> None:
    view = ChannelView("lobby")
    applied = view.apply(snapshot(10, member("alice"), member("bob", "busy"), typing=("bob",)))
    assert applied.changes == () and not applied.resync
    assert view.seq == 10 and view.occupancy == 2 and view.typing == {"bob"}
    assert view.members["bob"].status == "busy"


def test_diffs_in_order_apply_joins_updates_and_leaves() -> None:
    view = held()
    joined = view.apply(diff(11, 2, joins=(member("bob"),)))
    updated = view.apply(diff(12, 2, updates=(member("bob", "away", status_text="Lunch"),)))
    left = view.apply(diff(13, 1, leaves=("alice",)))
    assert [type(c) for c in (*joined.changes, *updated.changes, *left.changes)] == [
        MemberJoined, MemberUpdated, MemberLeft]
    update = updated.changes[0]
    assert isinstance(update, MemberUpdated) and update.previous is not None
    assert (update.previous.status, update.member.status, update.member.status_text) == ("online", "away", "Lunch")
    assert view.seq == 13 and set(view.members) == {"bob"} and view.occupancy == 1


def test_a_gap_applies_nothing_and_asks_for_a_resync_once() -> None:
    view = held()
    first = view.apply(diff(12, 2, joins=(member("bob"),)))
    assert first.resync and first.changes == ()
    assert view.seq == 10 and set(view.members) == {"alice"}
    again = view.apply(diff(13, 2, updates=(member("bob"),)))
    assert not again.resync and again.changes == ()  # already asked; waiting for the snapshot
    view.apply(diff(11, 2, joins=(member("bob"),)))
    assert view.seq == 10, "while a resync is pending, diffs are not applied"


def test_the_snapshot_after_a_gap_resyncs_the_view() -> None:
    view = held()
    view.apply(diff(12, 2, joins=(member("bob"),)))
    applied = view.apply(snapshot(12, member("alice"), member("bob")))
    assert applied.changes == (Resynced("lobby", 12, dict(view.members)),)
    assert not view.resync_pending and set(view.members) == {"alice", "bob"}
    left = view.apply(diff(13, 1, leaves=("bob",)))
    assert [type(c) for c in left.changes] == [MemberLeft], "diffs apply again after the snapshot"
    assert set(view.members) == {"alice"}


def test_old_and_repeated_diffs_are_ignored() -> None:
    view = held()
    view.apply(diff(11, 2, joins=(member("bob"),)))
    for old in (diff(11, 2, joins=(member("bob"),)), diff(9, 0, leaves=("alice",))):
        applied = view.apply(old)
        assert applied.changes == () and not applied.resync
    assert view.seq == 11 and set(view.members) == {"alice", "bob"}


def test_diffs_before_any_view_are_ignored() -> None:
    view = ChannelView("lobby")
    assert view.apply(diff(11, 1, joins=(member("bob"),))).changes == ()
    assert view.seq is None and not view.resync_pending


def test_a_batch_applies_on_its_from_seq_minus_one() -> None:
    view = held()
    applied = view.apply(diff(14, 2, joins=(member("carol"), member("dave")), leaves=("alice",),
                              kind="presence.batch", from_seq=11))
    assert [type(c) for c in applied.changes] == [MemberJoined, MemberJoined, MemberLeft]
    assert view.seq == 14 and set(view.members) == {"carol", "dave"}


def test_a_batch_that_started_before_the_held_view_is_a_gap() -> None:
    view = held()
    applied = view.apply(diff(14, 1, kind="presence.batch", from_seq=9))
    assert applied.resync and view.seq == 10


def test_the_first_diff_of_a_channels_life_applies_on_the_empty_channel() -> None:
    view = ChannelView("lobby")
    view.apply(snapshot(0))
    applied = view.apply(diff(1795826702710001, 1, joins=(member("alice"),), from_seq=1))
    assert not applied.resync and view.seq == 1795826702710001 and set(view.members) == {"alice"}


def test_a_forgotten_channel_snapshot_at_zero_replaces_the_view() -> None:
    view = held()
    applied = view.apply(snapshot(0))
    assert applied.changes == (Resynced("lobby", 0, {}),) and view.seq == 0 and view.members == {}


def test_typing_is_replaced_and_reported_with_who_started_and_stopped() -> None:
    view = held()
    view.apply(diff(11, 2, joins=(member("bob"),), typing=("alice",)))
    applied = view.apply(diff(12, 2, typing=("bob",)))
    assert applied.changes == (TypingChanged("lobby", 12, frozenset({"bob"}), frozenset({"bob"}),
                                             frozenset({"alice"})),)
    assert view.apply(diff(13, 2, typing=("bob",))).changes == ()  # a step without a typing change reports none


def test_resumed_at_the_held_seq_keeps_the_view_then_the_missed_diffs_apply() -> None:
    view = held()
    resumed = view.apply({"type": "presence.resumed", "channel": "lobby", "ref": None, "since": 10, "seq": 12})
    assert resumed.changes == (Resumed("lobby", 10, 12),) and not resumed.resync
    view.apply(diff(11, 2, joins=(member("bob"),)))
    view.apply(diff(12, 2, updates=(member("bob", "busy"),)))
    assert view.seq == 12 and view.members["bob"].status == "busy"


def test_resumed_from_another_seq_is_a_gap() -> None:
    view = held()
    assert view.apply({"type": "presence.resumed", "channel": "lobby", "ref": None, "since": 7, "seq": 12}).resync

"""Fan-out: diffs in order, snapshots after a gap, and coalesced batches for large channels."""

from __future__ import annotations

import asyncio

import orjson

from schemas.changes import ChannelView, Departure, Member
from services.fanout import Fanout


class Inbox:
    def __init__(self) -> None:
        self.frames: list[dict] = []  # type: ignore[type-arg]

    def push(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))


def member(user: str, status: str = "online") -> Member:
    return Member(user_id=user, status=status, joined_at=1, last_seen=1, connections=1)


def view(seq: int, members: list[str], joins=(), leaves=(), updates=()) -> ChannelView:  # type: ignore[no-untyped-def]
    return ChannelView(
        channel="c", seq=seq, at=seq, members=tuple(member(u) for u in members),
        joins=tuple(member(u) for u in joins), updates=tuple(member(u, "away") for u in updates),
        leaves=tuple(Departure(user_id=u, reason="leave", last_seen=seq) for u in leaves),
    )


async def test_small_channels_get_one_diff_per_view_and_a_snapshot_after_a_gap() -> None:
    fanout, inbox = Fanout(batch_above=10, batch_window_s=0.01), Inbox()
    fanout.subscribe("c", inbox)
    fanout.publish(view(1, ["a"], joins=["a"]), 0)
    fanout.publish(view(3, ["a", "b", "c"], joins=["c"]), 1)
    assert [(f["type"], f["seq"]) for f in inbox.frames] == [("presence.diff", 1), ("presence.snapshot", 3)]


async def test_large_channels_get_the_net_effect_of_a_window_in_one_batch() -> None:
    fanout, inbox = Fanout(batch_above=2, batch_window_s=0.02), Inbox()
    fanout.subscribe("c", inbox)
    fanout.publish(view(5, ["a", "b", "c"], joins=["c"]), 4)  # c joins
    fanout.publish(view(6, ["a", "b", "c", "d"], joins=["d"]), 5)  # d joins
    fanout.publish(view(7, ["a", "b", "c"], leaves=["d"]), 6)  # and leaves again: nothing to show
    fanout.publish(view(8, ["b", "c"], leaves=["a"]), 7)  # a leaves
    fanout.publish(view(9, ["b", "c"], updates=["b"]), 8)  # b goes away
    assert inbox.frames == []
    await asyncio.sleep(0.05)
    [batch] = inbox.frames
    assert (batch["type"], batch["from_seq"], batch["seq"], batch["occupancy"]) == ("presence.batch", 5, 9, 2)
    assert [m["user_id"] for m in batch["joins"]] == ["c"]
    assert [(m["user_id"], m["status"]) for m in batch["updates"]] == [("b", "away")]
    assert [d["user_id"] for d in batch["leaves"]] == ["a"]


async def test_unsubscribed_channels_cost_nothing() -> None:
    fanout, inbox = Fanout(batch_above=10, batch_window_s=0.01), Inbox()
    fanout.subscribe("c", inbox)
    fanout.unsubscribe("c", inbox)
    fanout.publish(view(1, ["a"], joins=["a"]), 0)
    assert inbox.frames == []


async def test_a_subscriber_joining_during_a_window_gets_a_snapshot_not_an_overlapping_batch() -> None:
    fanout, early, late = Fanout(batch_above=2, batch_window_s=0.02), Inbox(), Inbox()
    fanout.subscribe("c", early)
    fanout.publish(view(5, ["a", "b", "c"], joins=["c"]), 4)
    fanout.subscribe("c", late)  # it was just sent the snapshot at seq 5
    fanout.publish(view(6, ["a", "b", "c", "d"], joins=["d"]), 5)
    await asyncio.sleep(0.05)
    assert [(f["type"], f["seq"]) for f in early.frames] == [("presence.batch", 6)]
    assert [(f["type"], f["seq"]) for f in late.frames] == [("presence.snapshot", 6)]


async def test_a_forgotten_channel_starts_over_from_an_empty_snapshot_and_a_new_life_diffs_from_it() -> None:
    fanout, inbox = Fanout(batch_above=10, batch_window_s=0.01), Inbox()
    fanout.subscribe("c", inbox)
    fanout.publish(view(0, []), 41)  # the edge read the channel's tombstone: it was at seq 41
    fanout.publish(view(7_000_001, ["a"], joins=["a"]), 0)  # first view of the next life
    fanout.publish(view(7_000_003, ["a", "b"], joins=["b"]), 0)  # not a first view: the edge missed one
    assert [(f["type"], f["seq"], f.get("from_seq")) for f in inbox.frames] == [
        ("presence.snapshot", 0, None), ("presence.diff", 7_000_001, 1), ("presence.snapshot", 7_000_003, None)]

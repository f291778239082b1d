"""Fan-out: pushes each new channel view to the WebSockets on this edge subscribed to the channel.

A view that follows the one the edge held (`seq = previous + 1`) goes out as a `presence.diff`;
after a gap (the edge missed views, for example after compaction) subscribers get a fresh
`presence.snapshot` instead, so applying frames in seq order is always correct. The first view
of a channel's life (the edge holds none, everyone in it just joined) is a diff from the empty
channel, `seq` 0: it goes out with `from_seq` 1.

Channels with more members than `batch_above` get coalesced frames instead: the views of a short
window are merged into one `presence.batch` (occupancy plus the net joins, leaves and updates,
`from_seq`..`seq`), so a busy large channel costs one frame per subscriber per window, not one per
change. The price is up to one window of extra latency in those channels only.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, Protocol

import orjson

from schemas.changes import ChannelView
from services import representation


class Subscriber(Protocol):
    def push(self, frame: bytes) -> None: ...


class Fanout:
    def __init__(self, batch_above: int, batch_window_s: float) -> None:
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)
        self._batch_above = batch_above
        self._batch_window_s = batch_window_s
        self._pending: dict[str, _Batch] = {}

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        self._subscribers[channel].add(subscriber)
        pending = self._pending.get(channel)
        if pending is not None:  # its snapshot is newer than the batch's start: it gets a snapshot instead
            pending.fresh.add(subscriber)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[channel]

    def publish(self, view: ChannelView, previous_seq: int) -> None:
        if not self._subscribers.get(view.channel):
            return
        pending = self._pending.get(view.channel)
        if pending is not None:
            pending.add(view)
        elif len(view.members) > self._batch_above and view.seq == previous_seq + 1:
            self._pending[view.channel] = _Batch(view)
            asyncio.get_running_loop().call_later(self._batch_window_s, self._flush, view.channel)
        elif view.seq == previous_seq + 1:
            self._send(view.channel, diff_frame(view))
        elif previous_seq == 0 and view.members == view.joins:
            self._send(view.channel, diff_frame(view, from_seq=1))
        else:
            self._send(view.channel, snapshot_frame(view))

    def _flush(self, channel: str) -> None:
        batch = self._pending.pop(channel, None)
        if batch is None:
            return
        frame = batch.frame()
        snapshot = snapshot_frame(batch.last) if batch.fresh else b""
        for subscriber in tuple(self._subscribers.get(channel, ())):
            subscriber.push(snapshot if subscriber in batch.fresh else frame)

    def _send(self, channel: str, frame: bytes) -> None:
        for subscriber in tuple(self._subscribers.get(channel, ())):
            subscriber.push(frame)


class _Batch:
    """The net effect of consecutive views of one channel: last word per user wins."""

    def __init__(self, first: ChannelView) -> None:
        self.from_seq = first.seq
        self.present_before = {m.user_id for m in first.members} - {m.user_id for m in first.joins}
        self.present_before |= {d.user_id for d in first.leaves}
        self.last = first
        self.fresh: set[Subscriber] = set()  # subscribed during the window, after a newer snapshot
        self.members: dict[str, dict[str, Any]] = {}
        self.departures: dict[str, dict[str, Any]] = {}
        self._merge(first)

    def add(self, view: ChannelView) -> None:
        if view.seq != self.last.seq + 1:  # a gap: the frame becomes a snapshot
            self.last, self.from_seq = view, -1
            return
        self.last = view
        self._merge(view)

    def _merge(self, view: ChannelView) -> None:
        for m in (*view.joins, *view.updates):
            self.departures.pop(m.user_id, None)
            self.members[m.user_id] = representation.member(m)
        for d in view.leaves:
            self.members.pop(d.user_id, None)
            self.departures[d.user_id] = representation.departure(d)

    def frame(self) -> bytes:
        if self.from_seq < 0:
            return snapshot_frame(self.last)
        return orjson.dumps({
            "type": "presence.batch",
            "channel": self.last.channel,
            "from_seq": self.from_seq,
            "seq": self.last.seq,
            "occupancy": len(self.last.members),
            "joins": [m for u, m in self.members.items() if u not in self.present_before],
            "updates": [m for u, m in self.members.items() if u in self.present_before],
            "leaves": [d for u, d in self.departures.items() if u in self.present_before],
            "typing": list(self.last.typing),
        })


def snapshot_frame(view: ChannelView, ref: object = None) -> bytes:
    body = {"type": "presence.snapshot", **representation.snapshot(view)}
    if ref is not None:
        body["ref"] = ref
    return orjson.dumps(body)


def diff_frame(view: ChannelView, from_seq: int | None = None) -> bytes:
    """`from_seq` only when the diff applies on a view other than `seq - 1`."""
    body = {"type": "presence.diff", **representation.diff(view)}
    if from_seq is not None:
        body["from_seq"] = from_seq
    return orjson.dumps(body)

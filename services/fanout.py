"""Fan-out: pushes each new channel view to the WebSockets on this edge subscribed to the channel.

A view that follows the one the edge held (`seq = previous + 1`) goes out as a `presence.diff`;
after a gap (the edge missed views, for example after compaction) subscribers get a fresh
`presence.snapshot` instead, so applying frames in seq order is always correct.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Protocol

import orjson

from schemas.changes import ChannelView
from services import representation


class Subscriber(Protocol):
    def push(self, frame: bytes) -> None: ...


class Fanout:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = defaultdict(set)

    def subscribe(self, channel: str, subscriber: Subscriber) -> None:
        self._subscribers[channel].add(subscriber)

    def unsubscribe(self, channel: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(channel)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[channel]

    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    def publish(self, view: ChannelView, previous_seq: int) -> None:
        subscribers = self._subscribers.get(view.channel)
        if not subscribers:
            return
        frame = diff_frame(view) if view.seq == previous_seq + 1 else snapshot_frame(view)
        for subscriber in tuple(subscribers):
            subscriber.push(frame)


def snapshot_frame(view: ChannelView, ref: object = None) -> bytes:
    body = {"type": "presence.snapshot", **representation.snapshot(view)}
    if ref is not None:
        body["ref"] = ref
    return orjson.dumps(body)


def diff_frame(view: ChannelView) -> bytes:
    return orjson.dumps({"type": "presence.diff", **representation.diff(view)})


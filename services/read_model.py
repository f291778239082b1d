"""The edge's local read model: the latest view of every channel and every user.

Each edge reads `presence.channels` and `presence.users` whole (no consumer group: every edge needs
every view) from the start, keeps the newest view per key, hands each newer channel view to a
listener (the fan-out), and wakes anyone waiting for a user's update to be applied. It is ready
once it has read up to the highwater of every partition, as its own fetches report it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.changes import ChannelView, UserView
from schemas.codec import DecodeError, decode
from schemas.topics import CHANNELS, USERS
from services import metrics
from services.broker import topic_partitions

log = logging.getLogger(__name__)
T = TypeVar("T")

Listener = Callable[[ChannelView, int], None]  # (new view, seq the edge had before)
HISTORY = 64  # recent views kept per channel, so a client resuming with `since` gets only what it missed


class ReadModel:
    def __init__(self, consumer: AIOKafkaConsumer, listener: Listener) -> None:
        self._consumer = consumer
        self._listener = listener
        self._channels: dict[str, deque[ChannelView]] = {}
        self._users: dict[str, UserView] = {}
        self._user_waiters: dict[str, list[tuple[str, asyncio.Future[UserView]]]] = {}
        self._partitions: list[TopicPartition] = []
        self._caught_up: set[TopicPartition] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return bool(self._partitions) and len(self._caught_up) == len(self._partitions)

    def view(self, channel: str) -> ChannelView:
        history = self._channels.get(channel)
        return history[-1] if history else ChannelView(channel=channel, seq=0, at=0, members=())

    def views_since(self, channel: str, seq: int) -> list[ChannelView] | None:
        """The views after `seq` in order, or None when they are no longer all held."""
        history = self._channels.get(channel)
        current = history[-1].seq if history else 0
        if seq == current:
            return []
        if not history or seq > current or history[0].seq > seq + 1:
            return None
        return [v for v in history if v.seq > seq]

    def user(self, user_id: str) -> UserView | None:
        return self._users.get(user_id)

    async def wait_for_user_event(self, user_id: str, event_id: str, timeout_s: float) -> UserView:
        """The user's view once it reflects `event_id`; raises TimeoutError otherwise."""
        current = self._users.get(user_id)
        if current is not None and current.event_id == event_id:
            return current
        future: asyncio.Future[UserView] = asyncio.get_running_loop().create_future()
        self._user_waiters.setdefault(user_id, []).append((event_id, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            waiters = self._user_waiters.get(user_id, [])
            if (event_id, future) in waiters:
                waiters.remove((event_id, future))
            if not waiters:
                self._user_waiters.pop(user_id, None)

    async def start(self) -> None:
        for topic in (CHANNELS.name, USERS.name):
            partitions = await topic_partitions(self._consumer, topic)
            if not partitions:
                raise RuntimeError(f"topic {topic} does not exist; create the topics first (`presence up`)")
            self._partitions += partitions
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._consume_forever(), name="read-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _consume_forever(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                apply = self._apply_channel if tp.topic == CHANNELS.name else self._apply_user
                for record in records:
                    apply(record.key, record.value)
            for tp in self._partitions:
                highwater = self._consumer.highwater(tp)
                if highwater is not None and await self._consumer.position(tp) >= highwater:
                    self._caught_up.add(tp)

    def _apply_channel(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # the processor forgot the channel (it stayed empty): so does the edge
            channel = (key or b"").decode(errors="replace")
            history = self._channels.pop(channel, None)
            if history:
                # Subscribers start over from the empty channel at seq 0; a new life's first
                # view is a diff from there.
                self._listener(self.view(channel), history[-1].seq)
            return
        view = _decode(value, ChannelView)
        if view is None:
            return
        history = self._channels.setdefault(view.channel, deque(maxlen=HISTORY))
        previous_seq = history[-1].seq if history else 0
        if view.seq <= previous_seq:
            return  # a redelivery, or an older view than the one held
        history.append(view)
        metrics.VIEWS_APPLIED.inc()
        self._listener(view, previous_seq)

    def _apply_user(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # the processor forgot the user (offline beyond the retention)
            self._users.pop((key or b"").decode(errors="replace"), None)
            return
        view = _decode(value, UserView)
        if view is None:
            return
        self._users[view.user_id] = view
        for event_id, future in self._user_waiters.get(view.user_id, []):
            if event_id == view.event_id and not future.done():
                future.set_result(view)


def _decode(value: bytes, cls: type[T]) -> T | None:
    try:
        return decode(value, cls)
    except DecodeError as exc:
        log.error("skipping undecodable %s: %s", cls.__name__, exc)
        return None

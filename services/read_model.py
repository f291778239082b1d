"""The edge's local read model: the latest view of every channel, fed from `presence.channels`.

Each edge reads the whole topic (no consumer group: every edge needs every channel) from the
start, keeps the newest view per channel, and hands each newer view to a listener (the fan-out).
It is ready once it has read up to the highwater of every partition as reported by a fetch;
the broker's ListOffsets answer is not trusted for that (../shared/broker-notes.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.changes import ChannelView
from schemas.codec import DecodeError, decode
from schemas.topics import CHANNELS
from services import metrics

log = logging.getLogger(__name__)

Listener = Callable[[ChannelView, int], None]  # (new view, seq the edge had before)


class ReadModel:
    def __init__(self, consumer: AIOKafkaConsumer, listener: Listener) -> None:
        self._consumer = consumer
        self._listener = listener
        self._views: dict[str, ChannelView] = {}
        self._partitions: list[TopicPartition] = []
        self._caught_up: set[TopicPartition] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return bool(self._partitions) and len(self._caught_up) == len(self._partitions)

    def view(self, channel: str) -> ChannelView:
        return self._views.get(channel) or ChannelView(channel=channel, seq=0, at=0, members=())

    async def start(self) -> None:
        partitions = await _wait_for_partitions(self._consumer)
        self._partitions = [TopicPartition(CHANNELS.name, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._task = asyncio.create_task(self._consume_forever(), name="read-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _consume_forever(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for records in batches.values():
                for record in records:
                    self._apply(record.value)
            for tp in self._partitions:
                highwater = self._consumer.highwater(tp)
                if highwater is not None and await self._consumer.position(tp) >= highwater:
                    self._caught_up.add(tp)

    def _apply(self, value: bytes) -> None:
        try:
            view = decode(value, ChannelView)
        except DecodeError as exc:
            log.error("skipping undecodable channel view: %s", exc)
            return
        previous = self._views.get(view.channel)
        previous_seq = previous.seq if previous else 0
        if view.seq <= previous_seq:
            return  # a redelivery, or an older view than the one held
        self._views[view.channel] = view
        metrics.VIEWS_APPLIED.inc()
        self._listener(view, previous_seq)


async def _wait_for_partitions(consumer: AIOKafkaConsumer) -> set[int]:
    for _ in range(100):
        partitions = consumer.partitions_for_topic(CHANNELS.name)
        if partitions:
            return partitions
        await consumer.topics()  # refreshes the cluster metadata
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {CHANNELS.name} does not exist; create the topics first (`presence up`)")

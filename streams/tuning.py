"""Work-arounds for faust-streaming defaults and broker defects that cost latency, CPU or state.

- Faust hard-codes the worker consumer's fetch wait to 1500 ms; the broker answers a waiting
  fetch only when the wait ends, so that wait is added to every hop. We set it on the consumer
  before it starts (aiokafka reads it when it builds its fetcher).
- The worker leaves the root, `faust` and `aiokafka` loggers at DEBUG whatever `-l` says;
  building the discarded records cost 12-40% of the worker's CPU when measured.
- Table recovery reads each changelog up to its end offset (ListOffsets). The embedded broker
  reports the end of a multi-record batch as its base offset + 1, so recovery stopped early and
  silently lost state. A fetch reports the true highwater, so we read the end from a fetch at
  the reported offset. On a correct broker the two agree and this costs one fetch per partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

# How long a recovery may wait for the fetches that find the true end of its changelogs.
END_OFFSET_TIMEOUT_S = 30.0


def set_fetch_wait(fetch_wait_ms: int) -> None:
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create_with_fetch_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = fetch_wait_ms
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_with_fetch_wait


def read_end_offsets_by_fetch(bootstrap_servers: str) -> None:
    listed = faust_aiokafka.AIOKafkaConsumerThread._highwaters

    async def fetched(self: Any, partitions: list[TP]) -> Mapping[TP, int]:
        return await fetched_end_offsets(bootstrap_servers, await listed(self, partitions))

    faust_aiokafka.AIOKafkaConsumerThread._highwaters = fetched


async def fetched_end_offsets(bootstrap_servers: str, listed: Mapping[TP, int]) -> dict[TP, int]:
    """The true end of each partition: the highwater a fetch at the listed end offset reports."""
    ends = dict(listed)
    # An empty partition lists 0, which is right; any other listed end is inside the last batch.
    suspects = [TopicPartition(tp.topic, tp.partition) for tp, end in listed.items() if end]
    if not suspects:
        return ends
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False,
                                fetch_max_wait_ms=5)
    await consumer.start()
    try:
        consumer.assign(suspects)
        for tp in suspects:
            consumer.seek(tp, listed[tp] - 1)
        async with asyncio.timeout(END_OFFSET_TIMEOUT_S):
            while suspects:
                await consumer.getmany(*suspects, timeout_ms=100)
                for tp in [tp for tp in suspects if consumer.highwater(tp) is not None]:
                    ends[TP(tp.topic, tp.partition)] = max(listed[tp], consumer.highwater(tp))
                    suspects.remove(tp)
    finally:
        await consumer.stop()
    return ends


def quiet_loggers(level: int = logging.WARNING) -> None:
    for name in ("", "faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(level)

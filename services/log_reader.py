"""Reading the log for history: a topic's partitions from a position (an offset, or a time) to where
their ends were when the read began, outside any consumer group.

The end is taken once, at the start (`end_offsets`): a read of a live log finishes, and what it
covers is stated by the offsets it stops at.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from services.broker import topic_partitions

FETCH_RECORDS = 10_000


@dataclass(frozen=True, slots=True)
class Span:
    """Where a read of one partition starts (offset, or the first record at or after `from_ms`) and stops."""

    partition: int
    start: int | None = None  # an offset; None: the first one kept
    from_ms: int | None = None  # a record timestamp; used when `start` is None
    stop: int | None = None  # an offset not read; None: the partition's end when the read began


def reader(bootstrap: str, client_id: str = "presence-history") -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None,
                            enable_auto_commit=False, fetch_max_wait_ms=50, max_partition_fetch_bytes=8 << 20,
                            isolation_level="read_committed")


async def extent(bootstrap: str, topic: str) -> dict[int, tuple[int, int]]:
    """Each partition's first kept offset and its end: how much a whole read has to go through."""
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        parts = await topic_partitions(consumer, topic, timeout_s=2)
        firsts, ends = await consumer.beginning_offsets(parts), await consumer.end_offsets(parts)
        return {tp.partition: (firsts[tp], ends[tp]) for tp in parts}
    finally:
        await consumer.stop()


async def read(bootstrap: str, topic: str, spans: Sequence[Span] | None = None
               ) -> AsyncGenerator[list[ConsumerRecord[bytes, bytes]], None]:
    """Batches of records, each batch from one partition in offset order. Every partition of the topic
    when `spans` is None. A topic that does not exist reads as empty."""
    consumer = reader(bootstrap)
    await consumer.start()
    try:
        if spans is None:
            spans = [Span(tp.partition) for tp in await topic_partitions(consumer, topic, timeout_s=2)]
        if not spans:
            return
        parts = {s.partition: TopicPartition(topic, s.partition) for s in spans}
        consumer.assign(list(parts.values()))
        ends = await consumer.end_offsets(list(parts.values()))
        firsts = await consumer.beginning_offsets(list(parts.values()))
        by_time = await consumer.offsets_for_times(
            {parts[s.partition]: s.from_ms for s in spans if s.start is None and s.from_ms is not None})
        stops: dict[TopicPartition, int] = {}
        for span in spans:
            tp = parts[span.partition]
            start = span.start
            if start is None and span.from_ms is not None:
                found = by_time.get(tp)
                start = found.offset if found is not None else ends[tp]
            start = max(start if start is not None else 0, firsts[tp])
            stop = ends[tp] if span.stop is None else min(span.stop, ends[tp])
            if start < stop:
                consumer.seek(tp, start)
                stops[tp] = stop
            else:
                consumer.pause(tp)
        while stops:
            fetched = await consumer.getmany(*stops, timeout_ms=1000, max_records=FETCH_RECORDS)
            for tp, records in fetched.items():
                stop = stops.get(tp)
                if stop is None:
                    continue
                kept = [r for r in records if r.offset < stop]
                if kept:
                    yield kept
                if len(kept) < len(records) or await consumer.position(tp) >= stop:
                    del stops[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()

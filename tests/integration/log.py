"""Reading a topic from offset 0 to its end, the end taken from fetch highwaters (not ListOffsets)."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.codec import DecodeError, decode
from schemas.events import Event, EventBatch
from schemas.topics import EVENTS
from services.broker import topic_partitions


async def read_all(bootstrap: str, topic: str, timeout_s: float = 30) -> list[ConsumerRecord]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        while len(done) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in (await consumer.getmany(timeout_ms=200, max_records=5000)).values():
                records.extend(batch)
            for tp in partitions:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
            await asyncio.sleep(0)
        return records
    finally:
        await consumer.stop()


async def logged_events(bootstrap: str) -> list[Event]:
    """Every event in `presence.events`, in log order per partition; records the processor sets
    aside as dead letters (they do not decode) are skipped, as the processor skips them."""
    return [event for _, _, event in await logged_positions(bootstrap)]


async def logged_positions(bootstrap: str) -> list[tuple[int, int, Event]]:
    """`logged_events` with each event's log position: its record's offset and its place in the batch."""
    events: list[tuple[int, int, Event]] = []
    for record in sorted(await read_all(bootstrap, EVENTS.name), key=lambda r: (r.partition, r.offset)):
        try:
            batch = decode(record.value, EventBatch)
        except DecodeError:
            continue
        events.extend((record.offset, index, event) for index, event in enumerate(batch.events))
    return events

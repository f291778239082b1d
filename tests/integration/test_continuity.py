"""The fold's own reader returns exactly the records of a hole, from multi-record batches too."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from faust.types import TP

from streams.continuity import read_records


async def test_read_records_returns_the_hole_in_offset_order(broker: tuple[str, bool]) -> None:
    bootstrap, _ = broker
    topic = f"continuity-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        # Sent without waiting, so the producer packs them into batches of several records.
        sent = [await producer.send(topic, f"r{i}".encode(), partition=0) for i in range(60)]
        offsets = [(await ack).offset for ack in sent]
    finally:
        await producer.stop()
    assert offsets == list(range(60))
    records = await asyncio.wait_for(read_records(bootstrap, TP(topic, 0), range(13, 47)), 60)
    assert [(r.offset, r.value) for r in records] == [(i, f"r{i}".encode()) for i in range(13, 47)]

"""The fold's own consumer: the records of a hole, from multi-record batches too, and the group's
committed offset, without joining the group."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from faust.types import TP

from schemas.topics import TopicSpec
from services.broker import create_topics
from streams.continuity import LogReader
from tests.integration.stack import Broker


async def test_the_fold_reads_committed_offsets_and_holes_with_a_consumer_of_its_own(broker: Broker) -> None:
    bootstrap = broker.bootstrap
    topic = f"test.continuity-{uuid.uuid4().hex[:8]}"
    await create_topics(bootstrap, 1, [TopicSpec(topic, key="", value="", cleanup_policy="delete", description="")])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        # Sent without waiting, so the producer packs them into batches of several records.
        sent = [await producer.send(topic, f"r{i}".encode(), partition=0) for i in range(60)]
        offsets = [(await ack).offset for ack in sent]
    finally:
        await producer.stop()
    assert offsets == list(range(60))
    group = f"group-{topic}"
    committer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign([TopicPartition(topic, 0)])
        await committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(13, "")})
    finally:
        await committer.stop()

    reader = LogReader(bootstrap, group_id=group)
    assert await asyncio.wait_for(reader.start_offset(TP(topic, 0)), 60) == 13
    records = await asyncio.wait_for(reader.read(TP(topic, 0), range(13, 47)), 60)
    assert [(r.offset, r.value) for r in records] == [(i, f"r{i}".encode()) for i in range(13, 47)]
    # A group that never committed starts at the log's first offset.
    assert await LogReader(bootstrap, group_id=f"{group}-new").start_offset(TP(topic, 0)) == 0

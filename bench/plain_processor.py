"""`python -m bench.plain_processor`: both processor stages on plain aiokafka, for comparison with Faust.

The same pure folds (`streams.core.apply_at`, `streams.channels.apply_member_change_at`) and the same
records as `streams/agents.py` writes (every change on `presence.changes`, member changes on
`presence.channel-changes`, user views on `presence.users`, the tables' states on their changelogs,
channel views on `presence.channels`), without Faust: one consumer in a group, states in dicts, one
idempotent producer with a short linger, offsets committed every second. It leaves out what the
comparison does not measure: probes, dead letters, the sweeper, hole filling, table recovery.
Benchmark code only; nothing in the service runs it.
"""

from __future__ import annotations

import asyncio
import os
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from schemas.changes import ChannelExpired, MemberChange, MemberJoined, MemberLeft, MemberTyping, MemberUpdated
from schemas.codec import decode, decode_change, encode
from schemas.events import EdgeLeased, EdgeProbed, EventBatch
from schemas.state import ChannelState, EdgeLease, UserPresence
from schemas.topics import (
    CHANGES,
    CHANNEL_CHANGES,
    CHANNELS,
    CHANNELS_CHANGELOG,
    EVENTS,
    LEASES_CHANGELOG,
    PROCESSOR_GROUP,
    USERS,
    USERS_CHANGELOG,
)
from streams.channels import apply_member_change_at
from streams.core import apply_at, renewed, user_view

MEMBER = (MemberJoined, MemberUpdated, MemberLeft, MemberTyping)
COMMIT_EVERY_S = 1.0


async def run(bootstrap: str, linger_ms: int) -> None:
    consumer = AIOKafkaConsumer(EVENTS.name, CHANNEL_CHANGES.name, bootstrap_servers=bootstrap,
                                group_id=PROCESSOR_GROUP, enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=500, max_partition_fetch_bytes=4 * 1024 * 1024)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=linger_ms, max_batch_size=512 * 1024)
    await consumer.start()
    await producer.start()
    users: dict[str, UserPresence] = {}
    leases: dict[tuple[str, int], EdgeLease] = {}
    channels: dict[str, ChannelState] = {}
    committed_at = time.monotonic()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == EVENTS.name:
                        await _fold_events(producer, users, leases, record.value, record.offset, tp.partition)
                    else:
                        await _fold_channel(producer, channels, record.value, record.offset, tp.partition)
            if batches and time.monotonic() - committed_at > COMMIT_EVERY_S:
                await producer.flush()
                await consumer.commit()
                committed_at = time.monotonic()
    finally:
        await producer.stop()
        await consumer.stop()


async def _fold_events(producer: AIOKafkaProducer, users: dict[str, UserPresence],
                       leases: dict[tuple[str, int], EdgeLease], value: bytes, offset: int, partition: int) -> None:
    batch = decode(value, EventBatch)
    for index, event in enumerate(batch.events):
        if isinstance(event, EdgeProbed):
            continue
        if isinstance(event, EdgeLeased):
            lease = leases[event.edge_id, partition] = renewed(leases.get((event.edge_id, partition)), event)
            await producer.send(LEASES_CHANGELOG, encode(lease), key=f"{event.edge_id}/{partition}".encode(),
                                partition=partition)
            continue
        before = users.get(event.user_id)
        after, changes = apply_at(before, event, offset, index, lambda edge_id: leases.get((edge_id, partition)))
        if after is before or after is None:
            continue
        users[event.user_id] = after
        key = event.user_id.encode()
        await producer.send(USERS_CHANGELOG, encode(after), key=key, partition=partition)
        for change in changes:
            encoded = encode(change)
            await producer.send(CHANGES.name, encoded, key=change.user_id.encode())
            if isinstance(change, MEMBER):
                await producer.send(CHANNEL_CHANGES.name, encoded, key=change.channel.encode())
        await producer.send(USERS.name, encode(user_view(after, event.event_id)), key=key)


async def _fold_channel(producer: AIOKafkaProducer, channels: dict[str, ChannelState], value: bytes, offset: int,
                        partition: int) -> None:
    change = decode_change(decode(value, dict))
    if not isinstance(change, MemberChange | ChannelExpired):
        return
    state, view = apply_member_change_at(channels.get(change.channel), change, offset)
    if state is None or view is None:
        return
    channels[change.channel] = state
    key = change.channel.encode()
    await producer.send(CHANNELS_CHANGELOG, encode(state), key=key, partition=partition)
    await producer.send(CHANNELS.name, encode(view), key=key)


if __name__ == "__main__":
    asyncio.run(run(os.environ["KAFKA_BOOTSTRAP_SERVERS"], int(os.environ.get("PLAIN_LINGER_MS", "2"))))

"""A record the processor cannot handle goes to the dead-letter topic and its partition goes on."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from schemas.codec import decode
from schemas.dead_letters import DeadLetter
from schemas.topics import partition_for
from tests.integration.frames import diff_with, user
from tests.integration.log import read_all
from tests.integration.stack import PARTITIONS, Stack, eventually


async def test_a_poison_record_is_set_aside_and_the_partition_keeps_going(
    stack: Stack, connect, channel: str
) -> None:
    user_id = user("after-poison")
    poison = b'{"events": [{"type": "heartbeat", "surprise": true}], "v": 1}'
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait("presence.events", poison, partition=partition_for(user_id, PARTITIONS))
    finally:
        await producer.stop()
    client = await connect(user_id)
    await client.join(channel)
    await client.next(diff_with(channel, "joins", user_id))  # the same partition, processed after the poison

    async def letters() -> list[DeadLetter]:
        return [decode(r.value, DeadLetter) for r in await read_all(stack.bootstrap, "presence.dead-letters")]

    letters_found = await eventually(letters)
    assert any(d.value == poison.decode() and "surprise" in d.error for d in letters_found)

"""How the edge finds the partitions of the processor's users changelog (services/previous_incarnation.py,
services/processor_watch.py), which it reads with a group-less reader (`services.broker.group_less_reader`)."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.topics import USERS_CHANGELOG
from services.broker import topic_partitions


async def assign_users_changelog(consumer: AIOKafkaConsumer, partition_count: int) -> list[TopicPartition]:
    """Assigns the changelog's partitions to a started consumer; none while no processor has created it."""
    assigned: list[TopicPartition] = []
    with contextlib.suppress(KafkaError):
        assigned = await topic_partitions(consumer, USERS_CHANGELOG, timeout_s=0)
    if assigned:
        consumer.assign(assigned)
    return assigned

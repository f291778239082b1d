"""How the edge finds the partitions of the processor's table changelogs (services/previous_incarnation.py,
services/processor_watch.py), which it reads with a group-less reader (`services.broker.group_less_reader`)."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.topics import USERS_CHANGELOG
from services.broker import topic_partitions


async def assign_users_changelog(consumer: AIOKafkaConsumer, partition_count: int,
                                 changelogs: tuple[str, ...] = (USERS_CHANGELOG,)) -> list[TopicPartition]:
    """Assigns the changelogs' partitions to a started consumer; none while no processor has created them."""
    assigned: list[TopicPartition] = []
    for changelog in changelogs:
        partitions: list[TopicPartition] = []
        with contextlib.suppress(KafkaError):
            partitions = await topic_partitions(consumer, changelog, timeout_s=0)
        if not partitions:
            return []
        assigned += partitions
    consumer.assign(assigned)
    return assigned

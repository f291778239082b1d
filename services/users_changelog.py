"""How the edge reads the processor's users changelog (services/previous_incarnation.py,
services/processor_watch.py): without a consumer group, each edge reading every partition itself."""

from __future__ import annotations

import contextlib

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from schemas.topics import USERS_CHANGELOG
from services.broker import topic_partitions


def users_changelog_consumer(bootstrap_servers: str, client_id: str, fetch_wait_ms: int) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=fetch_wait_ms,
    )


async def assign_users_changelog(consumer: AIOKafkaConsumer, partition_count: int) -> list[TopicPartition]:
    """Assigns the changelog's partitions to a started consumer; none while no processor has created it."""
    assigned: list[TopicPartition] = []
    with contextlib.suppress(KafkaError):
        assigned = await topic_partitions(consumer, USERS_CHANGELOG, timeout_s=0)
    if assigned:
        consumer.assign(assigned)
    return assigned

"""The edge's event log writer: batching per partition, acknowledgement, and failing with a code."""

from __future__ import annotations

import asyncio

import pytest

from schemas.codec import decode
from schemas.events import EventBatch, Heartbeat
from schemas.topics import partition_for
from services.errors import ApiError
from services.event_log import EventLog

PARTITIONS = 4


class FakeProducer:
    """Records what is sent; acknowledges at once, or never when `acks` is False."""

    def __init__(self, acks: bool = True) -> None:
        self.acks = acks
        self.sent: list[tuple[int, bytes | None, EventBatch]] = []

    async def send(self, topic: str, value: bytes, key: bytes | None, partition: int) -> asyncio.Future[None]:
        self.sent.append((partition, key, decode(value, EventBatch)))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.acks:
            delivery.set_result(None)
        return delivery


def heartbeat(user: str, n: int) -> Heartbeat:
    return Heartbeat(event_id=f"{user}-{n}", user_id=user, connection_id="c", edge_id="e", at=n)


async def test_events_written_together_share_one_record_per_partition() -> None:
    producer = FakeProducer()
    log = EventLog(producer, PARTITIONS, linger_ms=1, timeout_s=1)  # type: ignore[arg-type]
    await log.start()
    users = [f"user-{i}" for i in range(20)]
    await log.write(*(heartbeat(u, 1) for u in users))
    await log.stop()
    partitions = {partition_for(u, PARTITIONS) for u in users}
    assert sorted(p for p, _, _ in producer.sent) == sorted(partitions)
    for partition, key, batch in producer.sent:
        assert {partition_for(e.user_id, PARTITIONS) for e in batch.events} == {partition}
        assert key == (batch.events[0].user_id.encode() if len({e.user_id for e in batch.events}) == 1 else None)
    assert sorted(e.user_id for _, _, b in producer.sent for e in b.events) == sorted(users)


async def test_a_write_the_broker_does_not_acknowledge_fails_with_a_retriable_code() -> None:
    log = EventLog(FakeProducer(acks=False), PARTITIONS, linger_ms=0, timeout_s=0.2)  # type: ignore[arg-type]
    await log.start()
    with pytest.raises(ApiError) as failed:
        await log.write(heartbeat("u", 1))
    await log.stop()
    assert failed.value.error.code == "service.broker_unavailable"
    assert failed.value.error.retriable and failed.value.error.http_status == 503
    assert failed.value.response().headers["retry-after"] == "1"

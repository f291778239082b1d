"""Writing events to `presence.events`: one record per partition per flush, acknowledged by Kafka.

Events that arrive while a flush is being prepared share a record with the others bound for the
same partition (the worker pays per Kafka message, not per event). `write` returns only after
Kafka acknowledged the record holding the events (acks=all, idempotent producer), so the edge
never confirms an update the log does not have.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict

from aiokafka import AIOKafkaProducer

from schemas.codec import encode
from schemas.events import Event, EventBatch
from schemas.topics import EVENTS, batch_key, partition_for
from services import metrics
from services.errors import ApiError

log = logging.getLogger(__name__)

MAX_EVENTS_PER_RECORD = 500


def new_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


class EventLog:
    def __init__(self, producer: AIOKafkaProducer, partitions: int, linger_ms: float, timeout_s: float) -> None:
        self._producer = producer
        self._partitions = partitions
        self._linger_s = linger_ms / 1000
        self._timeout_s = timeout_s
        self._pending: dict[int, list[tuple[Event, asyncio.Future[None]]]] = defaultdict(list)
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="event-log-flusher")

    async def stop(self) -> None:
        if self._flusher is not None:
            await self._flush()
            self._flusher.cancel()

    async def write(self, *events: Event) -> None:
        """Append events; returns once Kafka acknowledged them, else raises `service.broker_unavailable`."""
        futures = [self._enqueue(e) for e in events]
        try:
            with metrics.WRITE_SECONDS.time():
                await asyncio.wait_for(asyncio.gather(*futures), self._timeout_s)
        except Exception as exc:  # a timeout, or the producer failing the delivery
            log.warning("event write failed: %r", exc)
            raise ApiError("service.broker_unavailable") from exc
        for event in events:
            metrics.EVENTS_WRITTEN.labels(event.type).inc()

    def _enqueue(self, event: Event) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[partition_for(event.user_id, self._partitions)].append((event, future))
        self._wakeup.set()
        return future

    async def _flush_forever(self) -> None:
        while True:
            await self._wakeup.wait()
            if self._linger_s:
                await asyncio.sleep(self._linger_s)
            self._wakeup.clear()
            await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, defaultdict(list)
        for partition, items in pending.items():
            for start in range(0, len(items), MAX_EVENTS_PER_RECORD):
                chunk = items[start : start + MAX_EVENTS_PER_RECORD]
                await self._send(partition, chunk)

    async def _send(self, partition: int, items: list[tuple[Event, asyncio.Future[None]]]) -> None:
        events = tuple(e for e, _ in items)
        key = batch_key(e.user_id for e in events)
        try:
            delivery = await self._producer.send(
                EVENTS.name, encode(EventBatch(events=events)), key=key, partition=partition
            )
        except Exception as exc:
            _settle(items, exc)
            return
        delivery.add_done_callback(lambda d: _settle(items, d.exception()))


def _settle(items: list[tuple[Event, asyncio.Future[None]]], exc: BaseException | None) -> None:
    for _, future in items:
        if future.done():
            continue
        if exc is None:
            future.set_result(None)
        else:
            future.set_exception(exc)

"""Every record of a partition reaches the fold once and in offset order, whatever Faust drops.

After a kill -9 failover, faust-streaming on the embedded broker handed the fold a partition's
records with a hole (offsets 295-333 missing, 334 next): records fetched while its flow was
suspended are dropped, yet counted as read. Its commit then stuck before the hole, and the next
rebalance applied the hole late, behind newer updates, a reordering the core cannot undo
(docs/reliability.md, defect A). Our topics are written without transactions, so their offsets
have no legitimate holes: the fold checks each partition's offsets, reads what is missing itself
with a plain consumer, applies it first, and tells Faust it may commit past it. The first record
after an assignment is checked against the group's committed offset (or the log's start when
there is none), asked of the broker: Faust was seen to start a partition 75 records past its
committed offset, and once past the very first record of a partition, without noticing.

Faust also marks the offsets it skipped as done on its own (a provision for transaction markers),
so a rebalance could commit past a hole the fold never saw, and the records were lost for good
(seen: 168 records of one partition). `leave_skipped_offsets_unacknowledged` turns that off: a
hole is committed past only once the fold has filled it, or is redone by the next owner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.consumer import Consumer
from faust.types import TP

log = logging.getLogger(__name__)

# How long the fold waits for the broker (a hole's records, a committed offset). On a timeout the
# agent crashes, Faust starts it again, and the next record shows the same hole: it is tried again.
READ_TIMEOUT_S = 30.0


_mark_done = Consumer._add_gap


def leave_skipped_offsets_unacknowledged() -> None:
    async def keep_unacknowledged(self: Consumer, tp: TP, offset_from: int, offset_to: int) -> None:
        log.warning("Faust skipped %s/%s offsets %s-%s; they stay unacknowledged",
                    tp.topic, tp.partition, offset_from, offset_to)

    Consumer._add_gap = keep_unacknowledged  # type: ignore[method-assign]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Continuity:
    """The next offset the fold expects in each partition it holds (pure bookkeeping)."""

    def __init__(self) -> None:
        self._next: dict[TP, int] = {}

    def holds(self, tp: TP) -> bool:
        """Whether a record of `tp` was applied since the partition was assigned."""
        return tp in self._next

    def missing(self, tp: TP, offset: int, start: int | None = None) -> range | None:
        """Offsets to apply before `offset`: empty when none, None when `offset` was applied already.

        The first record after an assignment is expected at `start`, where the group resumes.
        """
        expected = self._next.get(tp, start)
        if expected is None or offset == expected:
            return range(0)
        if offset < expected:
            return None
        return range(expected, offset)

    def applied(self, tp: TP, offset: int) -> None:
        self._next[tp] = offset + 1

    def forget(self, partitions: Iterable[TP]) -> None:
        """A revoked partition starts again from its committed offset when it comes back."""
        for tp in partitions:
            self._next.pop(tp, None)


class LogReader:
    """A plain consumer of the worker's own, outside Faust, in the group only to read its offsets."""

    def __init__(self, bootstrap_servers: str, group_id: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None  # made on first use, inside the event loop
        self._lock = asyncio.Lock()  # both agents share it; it reads one partition at a time

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap_servers, group_id=self._group_id,
                                        enable_auto_commit=False, fetch_max_wait_ms=5)
            await consumer.start()  # no subscribe: it never joins the group or takes partitions
            self._consumer = consumer
        return self._consumer

    async def start_offset(self, tp: TP) -> int:
        """Where the group's new owner of `tp` starts: its committed offset, or the log's first
        offset when the group never committed one (the worker resets to the earliest)."""
        partition = TopicPartition(tp.topic, tp.partition)
        async with self._lock, asyncio.timeout(READ_TIMEOUT_S):
            consumer = await self._ready()
            committed = await consumer.committed(partition)
            if committed is not None:
                return committed  # type: ignore[no-any-return]
            return (await consumer.beginning_offsets([partition]))[partition]  # type: ignore[no-any-return]

    async def read(self, tp: TP, offsets: range) -> list[Record]:
        """The records at `offsets` of `tp`."""
        partition = TopicPartition(tp.topic, tp.partition)
        records: list[Record] = []
        async with self._lock, asyncio.timeout(READ_TIMEOUT_S):
            consumer = await self._ready()
            consumer.assign([partition])
            consumer.seek(partition, offsets.start)
            while await consumer.position(partition) < offsets.stop:
                fetched = await consumer.getmany(partition, timeout_ms=100)
                records += [Record(r.topic, r.partition, r.offset, r.key, r.value)
                            for r in fetched.get(partition, []) if r.offset in offsets]
        return records


class InOrder:
    """Adapts a Faust stream into the `Record`s of each partition in order, holes filled."""

    def __init__(self, app: Any, reader: LogReader) -> None:
        self._app = app
        self._reader = reader
        self.continuity = Continuity()
        app.on_partitions_revoked.connect(self._on_revoked)

    async def _on_revoked(self, sender: Any, revoked: set[TP], **_: Any) -> None:
        self.continuity.forget(revoked)

    async def records(self, stream: Any) -> AsyncIterator[Record]:
        async for event in stream.events():
            message = event.message
            tp = message.tp
            start = None if self.continuity.holds(tp) else await self._reader.start_offset(tp)
            missing = self.continuity.missing(tp, message.offset, start)
            if missing is None:
                continue
            if missing:
                log.warning("filling a hole in %s/%s: offsets %s-%s were not delivered, %s came next%s",
                            tp.topic, tp.partition, missing.start, missing.stop - 1, message.offset,
                            "" if start is None else " (first record after an assignment)")
                for record in await self._reader.read(tp, missing):
                    yield record
                # Faust never saw these offsets acknowledged; without this its commit stays before them.
                await _mark_done(self._app.consumer, tp, missing.start, missing.stop - 1)
            self.continuity.applied(tp, message.offset)
            yield Record(tp.topic, tp.partition, message.offset, message.key, event.value)

"""Whether presence flows now: what `/readyz` answers.

A caught-up read model says this edge can serve what the processor published, not that the
processor is there to publish. So the edge probes (schemas/probes.py): it writes an `edge.probed`
into every partition of `presence.events`, and the channel stage answers each on
`presence.probes`. The edge is ready while its read model is caught up and every partition has
answered a probe, none of which has waited longer than `answer_within_s` since it was written.
A partition answered is probed again `interval_s` later; an answer overdue, at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from schemas.codec import DecodeError, decode
from schemas.events import EdgeProbed
from schemas.probes import ProbeAnswered, probe_user_id
from schemas.topics import PROBES
from services.broker import topic_partitions
from services.errors import ApiError
from services.event_log import EventLog, new_id, now_ms

log = logging.getLogger(__name__)

TICK_S = 0.1


@dataclass
class _Partition:
    waiting: dict[str, int] = field(default_factory=dict)  # probe id -> when written (epoch ms)
    answered: bool = False
    last_written: int | None = None

    def due(self, now: int, interval_ms: int, answer_within_ms: int) -> bool:
        if self.last_written is None:
            return True
        if self.waiting:
            return now - self.last_written > answer_within_ms
        return now - self.last_written >= interval_ms

    def fresh(self, now: int, answer_within_ms: int) -> bool:
        return self.answered and all(now - written <= answer_within_ms for written in self.waiting.values())


class Readiness:
    """All times are epoch ms, from `clock` in the probing task and from the caller elsewhere."""

    def __init__(self, event_log: EventLog, consumer: AIOKafkaConsumer, edge_id: str, partitions: int,
                 interval_s: float, answer_within_s: float, clock: Callable[[], int] = now_ms) -> None:
        self._log = event_log
        self._consumer = consumer
        self._edge_id = edge_id
        self._partition_count = partitions
        self._interval_ms = int(interval_s * 1000)
        self._answer_within_ms = int(answer_within_s * 1000)
        self._clock = clock
        self._partitions = {p: _Partition() for p in range(partitions)}
        self._tasks: list[asyncio.Task[None]] = []

    def processor_folds(self, now: int) -> bool:
        """Whether every partition answered, with no probe overdue at `now`."""
        return all(p.fresh(now, self._answer_within_ms) for p in self._partitions.values())

    def unanswered(self, now: int) -> list[int]:
        return [n for n, p in self._partitions.items() if not p.fresh(now, self._answer_within_ms)]

    async def start(self) -> None:
        partitions = await topic_partitions(self._consumer, PROBES.name)
        if not partitions:
            raise RuntimeError(f"topic {PROBES.name} does not exist; create the topics first (`presence up`)")
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for tp in partitions:  # resolves the end now, so no answer to a probe written below is skipped
            await self._consumer.position(tp)
        self._tasks = [asyncio.create_task(self._read_answers(), name="readiness-answers"),
                       asyncio.create_task(self._probe_forever(), name="readiness-probes")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def answered(self, answer: ProbeAnswered) -> None:
        partition = self._partitions.get(answer.events_partition)
        if answer.edge_id != self._edge_id or partition is None or answer.probe_id not in partition.waiting:
            return
        written = partition.waiting[answer.probe_id]
        # Probes of a partition are folded in order: an answer clears every earlier one.
        partition.waiting = {probe: at for probe, at in partition.waiting.items() if at > written}
        partition.answered = True

    def due_probes(self, now: int) -> list[EdgeProbed]:
        """The probes to write at `now`, marked written."""
        probes = []
        for number, partition in self._partitions.items():
            if partition.due(now, self._interval_ms, self._answer_within_ms):
                probe = EdgeProbed(event_id=new_id(), user_id=probe_user_id(number, self._partition_count),
                                   connection_id="", edge_id=self._edge_id, at=now)
                partition.waiting[probe.event_id] = now
                partition.last_written = now
                probes.append(probe)
        return probes

    async def _probe_forever(self) -> None:
        while True:
            if probes := self.due_probes(self._clock()):
                try:
                    await self._log.write(*probes)
                except ApiError:
                    log.warning("readiness probes not written; the log did not acknowledge")
            await asyncio.sleep(TICK_S)

    async def _read_answers(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        self.answered(decode(record.value, ProbeAnswered))
                    except DecodeError as exc:
                        log.error("skipping undecodable probe answer: %s", exc)

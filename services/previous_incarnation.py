"""Closing the connections a previous incarnation of this edge left open.

An edge that dies without ending its sockets (kill -9, a crash, a lost host) leaves its connections
in the processor's state, shown as present, until the sweeper times them out. An edge that starts
with the same `PRESENCE_EDGE_ID` ends them at once instead: it reads the processor's `users`
changelog, finds the connections held under its id, and writes a `connection.closed` for each.
That event, unlike a `connection.dropped` with no grace, is applied by the fold itself, with no
wait for a sweep, so a user whose last connection it was leaves at once (reason `leave`).

Rules:
1. Each changelog partition is read only below the highwater it reported *before this incarnation
   served anyone* (its end offsets, of committed records), so a connection this incarnation opened
   is never among those closed.
2. A connection the previous incarnation reported dropped keeps the reconnect grace it was given.
3. What the changelog does not hold yet (an open the processor had not folded) times out as before.
4. Learning the highwaters holds up start-up for at most `HIGHWATER_WAIT_S`; reading and closing run
   in the background for at most `READ_TIMEOUT_S`, then what was found is closed. Failing either
   way, the edge serves as usual and those connections time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas.codec import DecodeError, decode, encode
from schemas.events import ConnectionClosed
from schemas.state import UserPresence
from schemas.topics import USERS_CHANGELOG
from services.broker import group_less_reader
from services.errors import ApiError
from services.event_log import EventLog, new_id, now_ms
from services.users_changelog import assign_users_changelog

log = logging.getLogger(__name__)

HIGHWATER_WAIT_S = 3.0
READ_TIMEOUT_S = 20.0


def stale_connections(states: Iterable[UserPresence], edge_id: str) -> list[tuple[str, str]]:
    """(user id, connection id) of each connection held under `edge_id` and never reported dropped.

    Only states the previous incarnation left behind may be passed (rule 1).
    """
    return [
        (state.user_id, c.connection_id)
        for state in states
        for c in state.connections
        if c.edge_id == edge_id and c.dropped_at is None
    ]


def close_events(stale: Iterable[tuple[str, str]], edge_id: str, at: int) -> list[ConnectionClosed]:
    return [
        ConnectionClosed(event_id=new_id(), user_id=user_id, connection_id=connection_id, edge_id=edge_id, at=at)
        for user_id, connection_id in stale
    ]


class Snapshot:
    """The latest state of every user whose latest changelog record mentions this edge, read below
    the start-up highwaters. Only those few records are kept and decoded."""

    def __init__(self, edge_id: str, highwaters: dict[int, int]) -> None:
        self.edge_id = edge_id
        self.highwaters = highwaters  # partition -> highwater before this incarnation served anyone
        self._marker = encode(edge_id)  # the id as a JSON string, as it appears in an encoded state
        self._values: dict[bytes, bytes] = {}

    def add(self, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        if key is None or offset >= self.highwaters.get(partition, 0):
            return  # written after this incarnation started: possibly its own connections
        if value is not None and self._marker in value:
            self._values[key] = value
        else:  # the user's newer state holds no connection of this edge (or the user was deleted)
            self._values.pop(key, None)

    def stale(self) -> list[tuple[str, str]]:
        states = []
        for key, value in self._values.items():
            try:
                states.append(decode(value, UserPresence))  # as the processor's codec (streams/codecs.py)
            except DecodeError as exc:
                log.error("skipping the undecodable state of %r in %s: %s", key, USERS_CHANGELOG, exc)
        return stale_connections(states, self.edge_id)


class PreviousIncarnation:
    """`start` learns the highwaters (rule 4), then reads and closes in the background."""

    def __init__(self, bootstrap_servers: str, edge_id: str, partitions: int, event_log: EventLog,
                 fetch_wait_ms: int) -> None:
        self._consumer = group_less_reader(bootstrap_servers, f"{edge_id}-previous-incarnation", fetch_wait_ms)
        self._partition_count = partitions
        self._edge_id = edge_id
        self._log = event_log
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            async with asyncio.timeout(HIGHWATER_WAIT_S):
                await self._consumer.start()
                highwaters = await self._highwaters()
        except (TimeoutError, KafkaError) as exc:
            log.warning("edge %s: previous incarnation's connections not closed (%r); they will time out",
                        self._edge_id, exc)
            await self._consumer.stop()
            return
        self._task = asyncio.create_task(self._close_stale(highwaters), name="previous-incarnation")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _highwaters(self) -> dict[TopicPartition, int]:
        assigned = await assign_users_changelog(self._consumer, self._partition_count)
        if not assigned:
            return {}  # no processor has kept state yet: nothing to close
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(assigned)
        return ends

    async def _close_stale(self, highwaters: dict[TopicPartition, int]) -> None:
        started = time.monotonic()
        snapshot = Snapshot(self._edge_id, {tp.partition: h for tp, h in highwaters.items()})
        pending = {tp for tp, h in highwaters.items() if h > 0}
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                await self._read(snapshot, pending)
        except TimeoutError:
            log.warning("edge %s: %s not read to its start-up highwater within %.0f s on %d partitions; "
                        "closing what was found", self._edge_id, USERS_CHANGELOG, READ_TIMEOUT_S, len(pending))
        except KafkaError as exc:
            log.warning("edge %s: reading %s failed (%r); closing what was found", self._edge_id, USERS_CHANGELOG, exc)
        finally:
            await self._consumer.stop()
        stale = snapshot.stale()
        if stale:
            try:
                await self._log.write(*close_events(stale, self._edge_id, now_ms()))
            except ApiError:
                log.warning("edge %s: the closes of %d connections of its previous incarnation were not written; "
                            "they will time out", self._edge_id, len(stale))
                return
        log.log(logging.WARNING if stale else logging.INFO,
                "edge %s: closed %d connection(s) its previous incarnation left open, in %.2f s",
                self._edge_id, len(stale), time.monotonic() - started)

    async def _read(self, snapshot: Snapshot, pending: set[TopicPartition]) -> None:
        if not pending:
            return
        self._consumer.assign(sorted(pending))
        await self._consumer.seek_to_beginning(*pending)
        while pending:
            batches = await self._consumer.getmany(*pending, timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    snapshot.add(tp.partition, record.offset, record.key, record.value)
            for tp in list(pending):
                if await self._consumer.position(tp) >= snapshot.highwaters[tp.partition]:
                    pending.discard(tp)

"""What the processor holds of the connections this edge has open, read from its users changelog,
and which of this edge's lease renewals it has applied, read from its leases changelog.

The processor's `users` table (`presence-users-changelog`, one `UserPresence` per record, keyed by
user id) is the truth about which connections count as live. The edge reads it from the end it had
when it started, decodes only the records of users with a connection here, and learns two things:

1. How the processor holds each connection: its timeout (`Connection.timeout_in_force_ms`), which
   follows updates made elsewhere too (REST, another device), and its last heartbeat; `Liveness`
   uses them to end silent sockets and to measure the processor's lag (services/liveness.py).
2. That the processor no longer holds a connection it held before: the sweeper timed it out (its
   heartbeats did not reach the log in time: a half-open socket that woke up, a stalled client or
   network), or its state was lost. The fold ignores every later event of that connection, so the
   edge closes its socket with `connection.timed_out` instead of acknowledging frames that change
   nothing; the client reconnects and is online again. Or a service forced the user offline
   (`user.forced_offline`): the state names it among the connections that ended
   (`forced_offline_connections`); the edge closes the socket with `connection.forced_offline`, and
   the client must not reconnect by itself.

Rules:
1. A connection is judged gone only after a state that held it was read: records written before
   its `connection.opened` was applied do not hold it yet, and must not close it.
2. Records of a user's key are in the order the processor wrote them, so the latest record read is
   the processor's latest state of that user.
3. Records are read from this incarnation's start only: it has no connections before that.

A record of `presence-leases-changelog` (an `EdgeLease`, keyed `{edge id}/{partition}`) of this
edge says the processor applied its renewals up to the record's `at` in that partition: the edge's
measure of the processor's lag (services/liveness.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from schemas.codec import DecodeError, decode
from schemas.state import Connection, EdgeLease, UserPresence
from schemas.topics import LEASES_CHANGELOG, USERS_CHANGELOG
from services.broker import group_less_reader
from services.users_changelog import assign_users_changelog

log = logging.getLogger(__name__)

RETRY_S = 1.0  # while the changelog does not exist yet, or after a failed fetch

GoneCause = Literal["timed_out", "forced_offline"]


@dataclass(slots=True)
class _Held:
    on_gone: Callable[[GoneCause], None]
    seen_held: bool = False  # a state held it (rule 1)


@dataclass(frozen=True, slots=True)
class Verdict:
    held: dict[str, Connection]  # connection id -> the connection as the processor holds it
    gone: list[str]  # connections the processor held and no longer holds


class HeldConnections:
    """The connections this edge has open, by user; judges each processor state of their users."""

    def __init__(self) -> None:
        self._by_user: dict[str, dict[str, _Held]] = {}

    def hold(self, user_id: str, connection_id: str, on_gone: Callable[[GoneCause], None]) -> None:
        self._by_user.setdefault(user_id, {})[connection_id] = _Held(on_gone)

    def release(self, user_id: str, connection_id: str) -> None:
        held = self._by_user.get(user_id)
        if held is not None:
            held.pop(connection_id, None)
            if not held:
                del self._by_user[user_id]

    def holds_user(self, user_id: str) -> bool:
        return user_id in self._by_user

    def judge(self, state: UserPresence) -> Verdict:
        """Notes which held connections `state` holds; those it no longer holds are released and
        their `on_gone` called with the cause."""
        held = self._by_user.get(state.user_id, {})
        present = {c.connection_id: c for c in state.connections}
        still, gone = {}, []
        for connection_id, entry in held.items():
            connection = present.get(connection_id)
            if connection is not None:
                entry.seen_held = True
                still[connection_id] = connection
            elif entry.seen_held:
                gone.append(connection_id)
        for connection_id in gone:
            entry = held[connection_id]
            self.release(state.user_id, connection_id)
            entry.on_gone("forced_offline" if connection_id in state.forced_offline_connections else "timed_out")
        return Verdict(still, gone)


class ProcessorWatch:
    """Reads the users and leases changelogs in the background: hands each state of a held user to
    `held`, and each of this edge's applied lease renewals to `on_lease` (partition, since, at)."""

    def __init__(self, bootstrap_servers: str, edge_id: str, partitions: int, fetch_wait_ms: int,
                 held: HeldConnections, on_held: Callable[[str, Connection], None],
                 on_lease: Callable[[int, int, int], None]) -> None:
        self._consumer = group_less_reader(bootstrap_servers, f"{edge_id}-processor-watch", fetch_wait_ms)
        self._edge_id = edge_id
        self._partition_count = partitions
        self._held = held
        self._on_held = on_held
        self._on_lease = on_lease
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        partitions = await self._partitions()
        if partitions:
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:  # resolved now, before serving, not at the first fetch
                await self._consumer.position(tp)
        self._task = asyncio.create_task(self._watch_forever(partitions), name="processor-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _partitions(self) -> list[TopicPartition]:
        return await assign_users_changelog(self._consumer, self._partition_count, (USERS_CHANGELOG, LEASES_CHANGELOG))

    async def _watch_forever(self, partitions: list[TopicPartition]) -> None:
        while not partitions:  # no processor has kept state yet: it will create the topic
            await asyncio.sleep(RETRY_S)
            partitions = await self._partitions()
            if partitions:  # created after this incarnation started: everything in it is new
                await self._consumer.seek_to_beginning(*partitions)
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            except KafkaError as exc:
                log.warning("reading %s failed (%r); retrying", USERS_CHANGELOG, exc)
                await asyncio.sleep(RETRY_S)
                continue
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == LEASES_CHANGELOG:
                        self._lease(record.key, record.value, tp.partition)
                    else:
                        self._apply(record.key, record.value)

    def _lease(self, key: bytes | None, value: bytes | None, partition: int) -> None:
        if value is None or key is None or not key.decode(errors="replace").startswith(f"{self._edge_id}/"):
            return
        try:
            lease = decode(value, EdgeLease)
        except DecodeError as exc:
            log.error("skipping an undecodable lease in %s: %s", LEASES_CHANGELOG, exc)
            return
        if lease.edge_id == self._edge_id:
            self._on_lease(partition, lease.since, lease.at)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        user_id = key.decode(errors="replace")
        if not self._held.holds_user(user_id):
            return  # most records: users with no connection on this edge are not decoded
        if value is None:  # a deleted user holds no connection
            state = UserPresence(user_id=user_id)
        else:
            try:
                state = decode(value, UserPresence)
            except DecodeError as exc:
                log.error("skipping an undecodable state of %r in %s: %s", user_id, USERS_CHANGELOG, exc)
                return
        verdict = self._held.judge(state)
        for connection_id, connection in verdict.held.items():
            self._on_held(connection_id, connection)
        if verdict.gone:
            log.info("the processor no longer holds %d connection(s) of %s open here; closing them",
                     len(verdict.gone), user_id)

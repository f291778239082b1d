"""Liveness of this edge's connections, written to the log as one lease per partition.

Any frame from a client counts as a sign of life. The edge writes no heartbeat per connection:
once per interval it renews its lease in every partition of `presence.events` (`edge.leased`),
which vouches for every connection it holds there, so idle connections cost `partitions` events
per interval per edge, however many there are. The sweeper times out the connections of an edge
whose lease lapsed (a crash, a lost host). A `heartbeat` event is written only for a connection
whose client did something other than heartbeating since its last one (`active_at`, for
auto-away), each on its own schedule (an interval after it was tracked, then every interval), in
the same records as the leases.

The same ticks end silent connections: one that sent nothing for longer than its presence timeout
is handed to its `on_silent` callback once (the session closes it and writes `connection.timed_out`),
so a connection whose client went away is never left vouched for. The timeout is the one the
processor holds for the connection (services/processor_watch.py), which follows updates made
elsewhere too (REST, another device), once a state of it was read; before that, the one the
session stamped in its own events.

The leases measure the processor's lag as this edge sees it (`processor_lag_s`, the metric
`presence_processor_lag_seconds`): how long the oldest renewal written has waited until the
processor's `leases` table shows it applied (services/processor_watch.py). Leases flow in every
partition whatever the traffic, so the lag keeps rising while the processor is stopped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from schemas.events import EdgeLeased, Event, Heartbeat
from schemas.probes import probe_user_id
from schemas.state import Connection
from services import metrics
from services.errors import ApiError
from services.event_log import EventLog, new_id, now_ms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Liveness:
    user_id: str
    last_activity: int  # any frame
    last_active: int  # frames other than heartbeats: the user did something (auto-away)
    reported_active: int
    due: int  # when this connection is next reported
    timeout_ms: int | None = None  # the timeout the session's own events set; None: never ended for silence
    processor_timeout_ms: int | None = None  # the timeout the processor holds for it, once seen
    on_silent: Callable[[], None] | None = None  # called once, when silent for longer than the timeout
    silent: bool = False

    def silence_limit_ms(self) -> int | None:
        if self.timeout_ms is None:
            return None
        return self.processor_timeout_ms or self.timeout_ms


TICKS_PER_INTERVAL = 5
LEASE_TTL_INTERVALS = 2  # a lease vouches for two intervals: one late renewal does not time anyone out
UNAPPLIED_KEPT = 32  # per partition; beyond that, the newest entry absorbs later renewals (the lag is overstated)


class Liveness:
    def __init__(self, event_log: EventLog, edge_id: str, interval_s: float, partitions: int, since: int,
                 clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock  # epoch ms: read by the reporting task only; everything else is handed `now`
        self._log = event_log
        self._edge_id = edge_id
        self._interval_s = interval_s
        self._interval_ms = int(interval_s * 1000)
        self._partitions = partitions
        self._since = since  # this process's start: its lease covers no connection of an earlier one
        self._lease_due = since
        self._connections: dict[str, _Liveness] = {}
        # per partition, (lease `at`, wall ms the log acknowledged it) of renewals the processor has not shown applied
        self._unapplied: dict[int, deque[tuple[int, int]]] = {p: deque() for p in range(partitions)}
        self._task: asyncio.Task[None] | None = None

    def track(self, connection_id: str, user_id: str, at: int, timeout_ms: int | None = None,
              on_silent: Callable[[], None] | None = None) -> None:
        self._connections[connection_id] = _Liveness(
            user_id, at, at, at, due=at + self._interval_ms, timeout_ms=timeout_ms, on_silent=on_silent
        )

    def set_timeout(self, connection_id: str, timeout_ms: int) -> None:
        """The timeout the connection's own events set (opened, joins and leaves, its updates)."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.timeout_ms = timeout_ms

    def processor_holds(self, connection_id: str, held: Connection) -> None:
        """A state of the processor holds the connection as `held`: its timeout, which also follows
        updates made elsewhere."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.processor_timeout_ms = held.timeout_in_force_ms

    def lease_applied(self, partition: int, since: int, at: int) -> None:
        """The processor's `leases` table holds this edge's renewal of `at` in `partition`."""
        unapplied = self._unapplied.get(partition)
        if unapplied is None or since != self._since:
            return
        while unapplied and unapplied[0][0] <= at:
            unapplied.popleft()

    def processor_lag_s(self, now: int) -> float:
        """How long (at `now`, epoch ms) the oldest lease renewal written has waited for the processor."""
        oldest = min((u[0][1] for u in self._unapplied.values() if u), default=now)
        return max(0, now - oldest) / 1000

    def touch(self, connection_id: str, at: int, active: bool) -> None:
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.last_activity = max(connection.last_activity, at)
            if active:
                connection.last_active = max(connection.last_active, at)

    def last_activity(self, connection_id: str) -> int | None:
        """When the connection last sent a frame."""
        connection = self._connections.get(connection_id)
        return None if connection is None else connection.last_activity

    def silence_limit_ms(self, connection_id: str) -> int | None:
        """How long the connection may stay silent: the timeout in force for it."""
        connection = self._connections.get(connection_id)
        return None if connection is None else connection.silence_limit_ms()

    def activity_logged(self, connection_id: str, at: int) -> None:
        """An event of the connection was written: it is the user's activity in the log, no heartbeat
        needs to report it."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.reported_active = max(connection.reported_active, at)

    def forget(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._report_forever(), name="liveness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def report(self, now: int) -> int:
        """Renews the lease in every partition when an interval has passed, and writes a heartbeat for
        each connection due by `now` (epoch ms) whose client was active since its last one; returns
        how many events it wrote."""
        events: list[Event] = []
        leased = now >= self._lease_due
        if leased:
            ttl_ms = LEASE_TTL_INTERVALS * self._interval_ms
            events += [EdgeLeased(event_id=new_id(), user_id=probe_user_id(p, self._partitions), connection_id="",
                                  edge_id=self._edge_id, at=now, since=self._since, ttl_ms=ttl_ms)
                       for p in range(self._partitions)]
        for connection_id, c in self._connections.items():
            if c.due > now:
                continue
            c.due = now + self._interval_ms
            if c.last_active > c.reported_active:
                c.reported_active = c.last_active
                events.append(
                    Heartbeat(event_id=new_id(), user_id=c.user_id, connection_id=connection_id,
                              edge_id=self._edge_id, at=c.last_activity, active_at=c.last_active)
                )
        if events:
            await self._log.write(*events)
        if leased:  # the lag counts from the renewal; the write's own wait is in it
            self._lease_due = now + self._interval_ms
            for unapplied in self._unapplied.values():
                if len(unapplied) < UNAPPLIED_KEPT:
                    unapplied.append((now, now))
                else:
                    unapplied[-1] = (now, unapplied[-1][1])
        return len(events)

    def end_silent(self, now: int) -> list[str]:
        """Hands each connection silent for longer than its timeout by `now` to its `on_silent`, once;
        returns their ids."""
        silent = []
        for connection_id, c in self._connections.items():
            limit = c.silence_limit_ms()
            if limit is not None and not c.silent and now - c.last_activity > limit:
                c.silent = True
                silent.append(connection_id)
        for connection_id in silent:
            callback = self._connections[connection_id].on_silent
            if callback is not None:
                callback()
        return silent

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s / TICKS_PER_INTERVAL)
            now = self._clock()
            self.end_silent(now)
            metrics.PROCESSOR_LAG.set(self.processor_lag_s(now))
            try:
                await self.report(now)
            except ApiError:
                log.warning("lease and heartbeats not written this interval; the log did not acknowledge",
                            exc_info=True)

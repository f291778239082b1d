"""Liveness of this edge's connections, written to the log coalesced.

Any frame from a client counts as a sign of life. Instead of one record per heartbeat, the edge
writes once per interval one `heartbeat` event per connection that showed life since the last
write, batched by partition (one record per partition), so 10,000 idle connections cost a few
records per interval, not 1,000 records per second.

Each connection is reported on its own schedule (an interval after it was tracked, then every
interval), checked a few times per interval. Reporting every connection at the same tick sent the
processor thousands of heartbeats at once and stalled the updates queued behind them (a stall of
about 1 s every 5 s with 2,000 connections, docs/benchmarks.md); spread out, they cost the same
in total but arrive as a steady trickle.

The same ticks end silent connections: one that sent nothing for longer than its presence timeout
is handed to its `on_silent` callback once (the session closes it with `connection.timed_out`), so
a socket the processor has timed out, or is about to, is never left open and ignored. The timeout
is the larger of what the session stamped in its own events and what the processor holds for the
connection (services/processor_watch.py): an error on the late side is caught by the processor's
own timeout, which closes the socket too, while one on the early side would cut off a client that
was within the timeout it was given.

The same heartbeats measure the processor's lag as this edge sees it (`processor_lag_s`, the
metric `presence_processor_lag_seconds`): how long the oldest heartbeat written has waited until a
state of the processor shows it applied. Heartbeats flow while anyone is connected, so the lag
keeps rising while the processor is stopped, even when nothing else happens; with no connection
nothing waits and it is 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.events import Heartbeat
from schemas.state import Connection
from services import metrics
from services.errors import ApiError
from services.event_log import EventLog, new_id, now_ms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Liveness:
    user_id: str
    last_activity: int  # any frame
    reported: int
    last_active: int  # frames other than heartbeats: the user did something (auto-away)
    reported_active: int
    due: int  # when this connection is next reported
    timeout_ms: int | None = None  # the timeout the session's own events set; None: never ended for silence
    processor_timeout_ms: int | None = None  # the timeout the processor holds for it, once seen
    on_silent: Callable[[], None] | None = None  # called once, when silent for longer than the timeout
    silent: bool = False
    # (heartbeat `at`, wall ms the log acknowledged it) of heartbeats the processor has not shown applied
    unapplied: deque[tuple[int, int]] = field(default_factory=deque)

    def silence_limit_ms(self) -> int | None:
        if self.timeout_ms is None:
            return None
        return max(self.timeout_ms, self.processor_timeout_ms or 0)


TICKS_PER_INTERVAL = 5
UNAPPLIED_KEPT = 32  # beyond that, the newest entry absorbs later heartbeats (the lag is overstated, not lost)


class Liveness:
    def __init__(self, event_log: EventLog, edge_id: str, interval_s: float,
                 clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock  # epoch ms: read by the reporting task only; everything else is handed `now`
        self._log = event_log
        self._edge_id = edge_id
        self._interval_s = interval_s
        self._interval_ms = int(interval_s * 1000)
        self._connections: dict[str, _Liveness] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, connection_id: str, user_id: str, at: int, timeout_ms: int | None = None,
              on_silent: Callable[[], None] | None = None) -> None:
        self._connections[connection_id] = _Liveness(
            user_id, at, at, at, at, due=at + self._interval_ms, timeout_ms=timeout_ms, on_silent=on_silent
        )

    def set_timeout(self, connection_id: str, timeout_ms: int) -> None:
        """The timeout the connection's own events set (opened, joins and leaves, its updates)."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.timeout_ms = timeout_ms

    def processor_holds(self, connection_id: str, held: Connection) -> None:
        """A state of the processor holds the connection as `held`: its timeout (which also follows
        updates made elsewhere), and the heartbeats it has applied."""
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.processor_timeout_ms = held.timeout_in_force_ms
            unapplied = connection.unapplied
            while unapplied and unapplied[0][0] <= held.last_heartbeat:
                unapplied.popleft()

    def processor_lag_s(self, now: int) -> float:
        """How long (at `now`, epoch ms) the oldest heartbeat written has waited for the processor."""
        oldest = min((c.unapplied[0][1] for c in self._connections.values() if c.unapplied), default=now)
        return max(0, now - oldest) / 1000

    def touch(self, connection_id: str, at: int, active: bool) -> None:
        connection = self._connections.get(connection_id)
        if connection is not None:
            connection.last_activity = max(connection.last_activity, at)
            if active:
                connection.last_active = max(connection.last_active, at)

    def forget(self, connection_id: str) -> None:
        self._connections.pop(connection_id, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._report_forever(), name="liveness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def report(self, now: int) -> int:
        """Write a heartbeat for each connection due by `now` (epoch ms) that showed life since its
        last report; returns how many."""
        events = []
        for connection_id, c in self._connections.items():
            if c.due > now:
                continue
            c.due = now + self._interval_ms
            if c.last_activity > c.reported:
                active_at = c.last_active if c.last_active > c.reported_active else None
                c.reported, c.reported_active = c.last_activity, c.last_active
                events.append(
                    Heartbeat(event_id=new_id(), user_id=c.user_id, connection_id=connection_id,
                              edge_id=self._edge_id, at=c.last_activity, active_at=active_at)
                )
        if events:
            await self._log.write(*events)
            self._written(events, now)  # the lag counts from the report; the write's own wait is in it
        return len(events)

    def _written(self, events: list[Heartbeat], written_at: int) -> None:
        for event in events:
            connection = self._connections.get(event.connection_id)
            if connection is None:
                continue
            unapplied = connection.unapplied
            if len(unapplied) < UNAPPLIED_KEPT:
                unapplied.append((event.at, written_at))
            else:
                unapplied[-1] = (event.at, unapplied[-1][1])

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
                log.warning("heartbeats not written this interval; the log did not acknowledge", exc_info=True)


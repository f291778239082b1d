"""Liveness of this edge's connections, written to the log coalesced.

Any frame from a client counts as a sign of life. Instead of one record per heartbeat, the edge
writes once per interval one `heartbeat` event per connection that showed life since the last
write, batched by partition (one record per partition), so 10,000 idle connections cost a few
records per interval, not 1,000 records per second.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from schemas.events import Heartbeat
from services.errors import ApiError
from services.event_log import EventLog, new_id

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Liveness:
    user_id: str
    last_activity: int  # any frame
    reported: int
    last_active: int  # frames other than heartbeats: the user did something (auto-away)
    reported_active: int


class Liveness:
    def __init__(self, event_log: EventLog, edge_id: str, interval_s: float) -> None:
        self._log = event_log
        self._edge_id = edge_id
        self._interval_s = interval_s
        self._connections: dict[str, _Liveness] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, connection_id: str, user_id: str, at: int) -> None:
        self._connections[connection_id] = _Liveness(user_id, at, at, at, at)

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

    async def report(self) -> int:
        """Write a heartbeat for each connection active since the last report; returns how many."""
        events = []
        for connection_id, c in self._connections.items():
            if c.last_activity > c.reported:
                active_at = c.last_active if c.last_active > c.reported_active else None
                c.reported, c.reported_active = c.last_activity, c.last_active
                events.append(
                    Heartbeat(event_id=new_id(), user_id=c.user_id, connection_id=connection_id,
                              edge_id=self._edge_id, at=c.last_activity, active_at=active_at)
                )
        if events:
            await self._log.write(*events)
        return len(events)

    async def _report_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.report()
            except ApiError:
                log.warning("heartbeats not written this interval; the log did not acknowledge", exc_info=True)


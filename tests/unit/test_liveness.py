"""Coalesced liveness: each connection reported once per interval, on its own schedule."""

from __future__ import annotations

from typing import Any

from schemas.events import Heartbeat
from services.liveness import Liveness

T0 = 1_795_000_000_000
INTERVAL_MS = 5_000


class RecordingLog:
    def __init__(self) -> None:
        self.written: list[Heartbeat] = []

    async def write(self, *events: Any) -> None:
        self.written.extend(events)


def liveness() -> tuple[Liveness, RecordingLog]:
    log = RecordingLog()
    return Liveness(log, "edge-1", interval_s=INTERVAL_MS / 1000), log  # type: ignore[arg-type]


async def test_a_connection_is_reported_an_interval_after_it_was_tracked_if_it_showed_life() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1_000, active=False)

    assert await alive.report(T0 + INTERVAL_MS - 1) == 0
    assert await alive.report(T0 + INTERVAL_MS) == 1
    [beat] = log.written
    assert (beat.user_id, beat.connection_id, beat.edge_id, beat.at, beat.active_at) == (
        "alice", "c1", "edge-1", T0 + 1_000, None)


async def test_connections_tracked_at_different_times_are_reported_at_different_ticks() -> None:
    alive, log = liveness()
    for n in range(10):
        alive.track(f"c{n}", f"u{n}", T0 + n * 500)
        alive.touch(f"c{n}", T0 + n * 500 + 100, active=False)

    reported = [await alive.report(T0 + INTERVAL_MS + tick * 1_000) for tick in range(5)]

    assert reported == [1, 2, 2, 2, 2]  # spread over the interval, not all ten at once
    assert sorted(b.connection_id for b in log.written) == sorted(f"c{n}" for n in range(9))


async def test_a_silent_connection_is_not_reported_and_activity_is_reported_once() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    assert await alive.report(T0 + INTERVAL_MS) == 0  # no sign of life since it opened
    alive.touch("c1", T0 + 6_000, active=True)
    assert await alive.report(T0 + 2 * INTERVAL_MS) == 1
    assert await alive.report(T0 + 3 * INTERVAL_MS) == 0
    assert log.written[0].active_at == T0 + 6_000


async def test_a_forgotten_connection_is_never_reported() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1, active=False)
    alive.forget("c1")
    assert await alive.report(T0 + INTERVAL_MS) == 0
    assert log.written == []

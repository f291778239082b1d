"""Coalesced liveness: each connection reported once per interval, on its own schedule."""

from __future__ import annotations

from typing import Any

from schemas.events import Heartbeat
from schemas.state import Connection
from services.liveness import Liveness

T0 = 1_795_000_000_000
INTERVAL_MS = 5_000


class RecordingLog:
    def __init__(self) -> None:
        self.written: list[Heartbeat] = []

    async def write(self, *events: Any) -> None:
        self.written.extend(events)


def held(connection_id: str, last_heartbeat: int = T0, timeout_ms: int = 30_000) -> Connection:
    """The connection as a state of the processor holds it."""
    return Connection(connection_id=connection_id, edge_id="edge-1", opened_at=T0, last_heartbeat=last_heartbeat,
                      timeout_ms=timeout_ms)


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


def test_a_connection_silent_for_longer_than_its_timeout_is_ended_once() -> None:
    alive, _ = liveness()
    ended: list[str] = []
    alive.track("c1", "alice", T0, timeout_ms=30_000, on_silent=lambda: ended.append("c1"))
    alive.track("c2", "bob", T0, timeout_ms=30_000, on_silent=lambda: ended.append("c2"))
    alive.touch("c2", T0 + 10_000, active=False)

    assert alive.end_silent(T0 + 30_000) == []  # exactly the timeout: not longer
    assert alive.end_silent(T0 + 30_001) == ["c1"]
    assert alive.end_silent(T0 + 35_000) == []  # once
    assert alive.end_silent(T0 + 40_001) == ["c2"]
    assert ended == ["c1", "c2"]


def test_the_silence_limit_follows_the_connections_own_timeout() -> None:
    alive, _ = liveness()
    ended: list[str] = []
    alive.track("c1", "alice", T0, timeout_ms=30_000, on_silent=lambda: ended.append("c1"))
    alive.set_timeout("c1", 10_000)  # joined a channel with a timeout of its own

    assert alive.end_silent(T0 + 10_001) == ["c1"]


def test_the_processors_longer_timeout_wins_and_a_shorter_one_is_left_to_the_processor() -> None:
    alive, _ = liveness()
    alive.track("longer", "alice", T0, timeout_ms=30_000, on_silent=lambda: None)
    alive.track("shorter", "bob", T0, timeout_ms=30_000, on_silent=lambda: None)
    alive.processor_holds("longer", held("longer", timeout_ms=300_000))  # set over REST or on another device
    alive.processor_holds("shorter", held("shorter", timeout_ms=5_000))  # the processor times it out first

    assert alive.end_silent(T0 + 30_001) == ["shorter"]
    assert alive.end_silent(T0 + 300_001) == ["longer"]


def test_a_connection_tracked_without_a_timeout_is_never_ended_and_a_forgotten_one_neither() -> None:
    alive, _ = liveness()
    alive.track("c1", "alice", T0)
    alive.track("c2", "bob", T0, timeout_ms=1_000, on_silent=lambda: None)
    alive.forget("c2")

    assert alive.end_silent(T0 + 10**9) == []


async def test_the_processor_lag_is_the_wait_of_the_oldest_heartbeat_not_yet_applied() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    alive.track("c2", "bob", T0)
    for n in range(1, 4):  # written every interval; none applied yet: the processor is stopped
        alive.touch("c1", T0 + n * INTERVAL_MS - 1, active=False)
        alive.touch("c2", T0 + n * INTERVAL_MS - 1, active=False)
        await alive.report(T0 + n * INTERVAL_MS)
    first_written = min(written for c in alive._connections.values() for _, written in c.unapplied)
    now = first_written + 12_000

    assert alive.processor_lag_s(now) == 12.0
    alive.processor_holds("c1", held("c1", last_heartbeat=log.written[0].at))  # c1's first applied
    assert alive.processor_lag_s(now) == 12.0  # c2's first still waits
    alive.processor_holds("c2", held("c2", last_heartbeat=log.written[-1].at))  # c2 caught up
    second_of_c1 = alive._connections["c1"].unapplied[0][1]
    assert alive.processor_lag_s(now) == (now - second_of_c1) / 1000
    alive.processor_holds("c1", held("c1", last_heartbeat=log.written[-1].at))
    assert alive.processor_lag_s(now) == 0.0


async def test_nothing_waits_without_heartbeats_and_a_forgotten_connection_waits_for_nothing() -> None:
    alive, _ = liveness()
    assert alive.processor_lag_s(T0) == 0.0  # no connection: no traffic, no lag
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1, active=False)
    await alive.report(T0 + INTERVAL_MS)
    assert alive.processor_lag_s(T0 + 10**9) > 0
    alive.forget("c1")
    assert alive.processor_lag_s(T0 + 10**9) == 0.0


async def test_a_long_stall_keeps_its_oldest_heartbeat_and_bounds_what_it_keeps() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    for n in range(1, 101):
        alive.touch("c1", T0 + n * INTERVAL_MS - 1, active=False)
        await alive.report(T0 + n * INTERVAL_MS)
    unapplied = alive._connections["c1"].unapplied
    oldest = unapplied[0][1]

    assert len(unapplied) == 32
    assert alive.processor_lag_s(oldest + 500_000) == 500.0
    alive.processor_holds("c1", held("c1", last_heartbeat=log.written[-1].at))  # caught up
    assert alive.processor_lag_s(oldest + 500_000) == 0.0

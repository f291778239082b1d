"""Liveness: one lease per partition per interval, a heartbeat only for activity, silent connections ended."""

from __future__ import annotations

from typing import Any

from schemas.events import EdgeLeased, Event, Heartbeat
from schemas.probes import probe_user_id
from schemas.state import Connection
from schemas.topics import partition_for
from services.liveness import UNAPPLIED_KEPT, Liveness

T0 = 1_795_000_000_000
INTERVAL_MS = 5_000
PARTITIONS = 4


class RecordingLog:
    def __init__(self) -> None:
        self.written: list[Event] = []

    async def write(self, *events: Any) -> None:
        self.written.extend(events)

    def leases(self) -> list[EdgeLeased]:
        return [e for e in self.written if isinstance(e, EdgeLeased)]

    def heartbeats(self) -> list[Heartbeat]:
        return [e for e in self.written if isinstance(e, Heartbeat)]


def held(connection_id: str, last_heartbeat: int = T0, timeout_ms: int = 30_000) -> Connection:
    """The connection as a state of the processor holds it."""
    return Connection(connection_id=connection_id, edge_id="edge-1", opened_at=T0, last_heartbeat=last_heartbeat,
                      timeout_ms=timeout_ms)


def liveness(since: int = T0) -> tuple[Liveness, RecordingLog]:
    log = RecordingLog()
    alive = Liveness(log, "edge-1", interval_s=INTERVAL_MS / 1000, partitions=PARTITIONS, since=since)  # type: ignore[arg-type]
    return alive, log


async def test_the_lease_is_renewed_in_every_partition_once_per_interval_however_many_connections() -> None:
    alive, log = liveness()
    for n in range(1000):
        alive.track(f"c{n}", f"u{n}", T0)
        alive.touch(f"c{n}", T0 + 1_000, active=False)  # heartbeat frames only

    for tick in range(0, 3 * INTERVAL_MS, INTERVAL_MS // 5):
        await alive.report(T0 + tick)

    assert log.heartbeats() == []
    assert [lease.at for lease in log.leases()] == [T0 + i * INTERVAL_MS for i in range(3) for _ in range(PARTITIONS)]
    first = log.leases()[:PARTITIONS]
    assert [partition_for(lease.user_id, PARTITIONS) for lease in first] == list(range(PARTITIONS))
    assert {(lease.edge_id, lease.since, lease.connection_id, lease.ttl_ms) for lease in first} == {
        ("edge-1", T0, "", 2 * INTERVAL_MS)}
    assert [lease.user_id for lease in first] == [probe_user_id(p, PARTITIONS) for p in range(PARTITIONS)]


async def test_activity_is_reported_once_by_a_heartbeat_an_interval_after_it_was_tracked() -> None:
    alive, log = liveness(since=T0 - 1)
    await alive.report(T0 - 1)  # the first lease
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1_000, active=True)
    alive.touch("c1", T0 + 2_000, active=False)

    assert await alive.report(T0 + INTERVAL_MS - 2) == 0
    await alive.report(T0 + INTERVAL_MS)
    assert await alive.report(T0 + 2 * INTERVAL_MS) == 0 + PARTITIONS  # no new activity: the lease only
    [beat] = log.heartbeats()
    assert (beat.user_id, beat.connection_id, beat.edge_id, beat.at, beat.active_at) == (
        "alice", "c1", "edge-1", T0 + 2_000, T0 + 1_000)


async def test_activity_an_event_already_logged_is_not_reported_again() -> None:
    alive, log = liveness(since=T0 - 1)
    await alive.report(T0 - 1)  # the first lease
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1_000, active=True)  # an update frame ...
    alive.activity_logged("c1", T0 + 1_001)  # ... whose event was written

    await alive.report(T0 + INTERVAL_MS)
    assert log.heartbeats() == []
    alive.touch("c1", T0 + 2_000, active=True)  # a subscribe: no event of its own
    await alive.report(T0 + 2 * INTERVAL_MS)
    assert [b.active_at for b in log.heartbeats()] == [T0 + 2_000]


async def test_connections_tracked_at_different_times_are_reported_at_different_ticks() -> None:
    alive, log = liveness()
    for n in range(10):
        alive.track(f"c{n}", f"u{n}", T0 + n * 500)
        alive.touch(f"c{n}", T0 + n * 500 + 100, active=True)

    reported = [await alive.report(T0 + INTERVAL_MS + tick * 1_000) for tick in range(5)]

    assert reported == [1 + PARTITIONS, 2, 2, 2, 2]  # spread over the interval, not all ten at once
    assert sorted(b.connection_id for b in log.heartbeats()) == sorted(f"c{n}" for n in range(9))


async def test_a_forgotten_connection_is_never_reported() -> None:
    alive, log = liveness()
    alive.track("c1", "alice", T0)
    alive.touch("c1", T0 + 1, active=True)
    alive.forget("c1")
    await alive.report(T0 + INTERVAL_MS)
    assert log.heartbeats() == []


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


def test_the_timeout_the_processor_holds_is_the_one_in_force_once_seen() -> None:
    alive, _ = liveness()
    alive.track("longer", "alice", T0, timeout_ms=30_000, on_silent=lambda: None)
    alive.track("shorter", "bob", T0, timeout_ms=30_000, on_silent=lambda: None)
    alive.processor_holds("longer", held("longer", timeout_ms=300_000))  # set over REST or on another device
    alive.processor_holds("shorter", held("shorter", timeout_ms=5_000))

    assert alive.end_silent(T0 + 5_001) == ["shorter"]
    assert alive.end_silent(T0 + 30_001) == []
    assert alive.end_silent(T0 + 300_001) == ["longer"]


def test_a_connection_tracked_without_a_timeout_is_never_ended_and_a_forgotten_one_neither() -> None:
    alive, _ = liveness()
    alive.track("c1", "alice", T0)
    alive.track("c2", "bob", T0, timeout_ms=1_000, on_silent=lambda: None)
    alive.forget("c2")

    assert alive.end_silent(T0 + 10**9) == []


async def test_the_processor_lag_is_the_wait_of_the_oldest_renewal_not_yet_applied() -> None:
    alive, log = liveness()
    assert alive.processor_lag_s(T0) == 0.0  # nothing written yet
    for n in range(3):  # renewed every interval; none applied yet: the processor is stopped
        await alive.report(T0 + n * INTERVAL_MS)
    now = T0 + 12_000

    assert alive.processor_lag_s(now) == 12.0
    for p in range(PARTITIONS - 1):
        alive.lease_applied(p, T0, T0 + 2 * INTERVAL_MS)
    assert alive.processor_lag_s(now) == 12.0  # the last partition's first renewal still waits
    alive.lease_applied(PARTITIONS - 1, T0, T0)
    assert alive.processor_lag_s(now) == (now - T0 - INTERVAL_MS) / 1000
    alive.lease_applied(PARTITIONS - 1, T0 - 1, T0 + 2 * INTERVAL_MS)  # an earlier process's lease: not ours
    assert alive.processor_lag_s(now) == (now - T0 - INTERVAL_MS) / 1000
    alive.lease_applied(PARTITIONS - 1, T0, T0 + 2 * INTERVAL_MS)
    assert alive.processor_lag_s(now) == 0.0
    assert len(log.leases()) == 3 * PARTITIONS


async def test_a_long_stall_keeps_its_oldest_renewal_and_bounds_what_it_keeps() -> None:
    alive, _ = liveness()
    for n in range(100):
        await alive.report(T0 + n * INTERVAL_MS)
    later = T0 + 500_000

    assert alive.processor_lag_s(later) == 500.0
    assert all(len(u) == UNAPPLIED_KEPT for u in alive._unapplied.values())
    for p in range(PARTITIONS):
        alive.lease_applied(p, T0, T0 + 99 * INTERVAL_MS)  # caught up: the newest entry absorbed the rest
    assert alive.processor_lag_s(later) == 0.0

"""The readiness rule (services/readiness.py): ready once every partition answered a probe, and not
once any probe has waited longer than the answer timeout; a probe overdue is written again."""

from __future__ import annotations

from typing import Any

from schemas.probes import ProbeAnswered, probe_user_id
from schemas.topics import partition_for
from services.readiness import Readiness

INTERVAL_MS, WITHIN_MS = 5_000, 10_000


def readiness(partitions: int = 2) -> Readiness:
    unused: Any = None  # the log and the consumer: only the tasks `start` runs use them
    return Readiness(unused, unused, "edge-1", partitions, INTERVAL_MS / 1000, WITHIN_MS / 1000)


def answer(probe_id: str, partition: int, edge_id: str = "edge-1") -> ProbeAnswered:
    return ProbeAnswered(probe_id=probe_id, edge_id=edge_id, events_partition=partition,
                         channel_changes_partition=partition, worker_id="w", at=0)


def test_every_partition_is_probed_at_once_with_a_user_id_of_its_own() -> None:
    probes = readiness(partitions=8).due_probes(now=100_000)
    assert [partition_for(p.user_id, 8) for p in probes] == list(range(8))
    assert {p.user_id for p in probes} == {probe_user_id(n, 8) for n in range(8)}


def test_ready_only_once_every_partition_answered() -> None:
    r = readiness()
    first, second = r.due_probes(now=100_000)
    assert r.unanswered(100_100) == [0, 1]
    r.answered(answer(first.event_id, 0))
    assert r.unanswered(100_200) == [1] and not r.processor_folds(100_200)
    r.answered(answer(second.event_id, 1, edge_id="another-edge"))  # not ours
    assert r.unanswered(100_300) == [1]
    r.answered(answer(second.event_id, 1))
    assert r.processor_folds(100_400)


def test_an_answered_partition_is_probed_again_after_the_interval() -> None:
    r = readiness(partitions=1)
    (probe,) = r.due_probes(now=100_000)
    r.answered(answer(probe.event_id, 0))
    assert r.due_probes(now=100_000 + INTERVAL_MS - 100) == []
    assert len(r.due_probes(now=100_000 + INTERVAL_MS)) == 1


def test_a_probe_unanswered_past_the_timeout_makes_it_unready_and_is_written_again() -> None:
    r = readiness(partitions=1)
    (probe,) = r.due_probes(now=100_000)
    r.answered(answer(probe.event_id, 0))
    (late,) = r.due_probes(now=105_000)
    assert r.processor_folds(105_000 + WITHIN_MS)  # still within the timeout
    assert r.due_probes(now=105_000 + WITHIN_MS) == []
    assert not r.processor_folds(105_000 + WITHIN_MS + 100)
    (again,) = r.due_probes(now=105_000 + WITHIN_MS + 100)
    r.answered(answer(again.event_id, 0))  # a later answer clears the earlier probe too
    assert r.processor_folds(120_000)
    r.answered(answer(late.event_id, 0))  # its own answer, arriving last, changes nothing
    assert r.processor_folds(120_000)

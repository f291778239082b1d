"""The worker's lag gauge follows the partitions the worker holds."""

from __future__ import annotations

from prometheus_client import REGISTRY

from streams import metrics


def _lag(partition: int) -> float | None:
    return REGISTRY.get_sample_value("presence_worker_consumer_lag", {"partition": str(partition)})


def test_the_lag_of_partitions_no_longer_held_leaves_the_gauge() -> None:
    metrics.lag_sampled({0: 5, 1: 0})
    assert (_lag(0), _lag(1)) == (5, 0)
    metrics.lag_sampled({1: 3, 2: 7})
    assert (_lag(0), _lag(1), _lag(2)) == (None, 3, 7)
    metrics.lag_sampled({})
    assert (_lag(1), _lag(2)) == (None, None)

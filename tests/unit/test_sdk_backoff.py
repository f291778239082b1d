"""The SDK's reconnect delays and typing throttle (presence_client.backoff, presence_client.presence)."""

from __future__ import annotations

import random

from presence_client import Backoff
from presence_client.presence import Throttle


def test_delays_are_full_jitter_under_a_doubling_ceiling() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30, rng=random.Random(7))
    for attempt in range(12):
        ceiling = min(30, 0.5 * 2**attempt)
        assert backoff.ceiling() == ceiling
        assert 0 <= backoff.next_delay() <= ceiling


def test_the_ceiling_is_capped_and_stays_capped() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(200)]
    assert backoff.ceiling() == 30 and max(delays) <= 30


def test_jitter_spreads_over_the_whole_range() -> None:
    """Full jitter: at the cap, draws cover [0, cap], not a band near it."""
    delays = []
    for seed in range(400):
        backoff = Backoff(base_s=1, cap_s=8, rng=random.Random(seed), attempts=10)
        delays.append(backoff.next_delay())
    assert min(delays) < 1 and max(delays) > 7
    assert 3 < sum(delays) / len(delays) < 5


def test_a_healthy_connection_resets_the_backoff_and_a_short_one_does_not() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30, healthy_after_s=10)
    for _ in range(5):
        backoff.next_delay()
    backoff.connection_ended(lasted_s=2)
    assert backoff.ceiling() == 16
    backoff.connection_ended(lasted_s=10)
    assert backoff.ceiling() == 0.5


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_throttle_lets_one_through_per_interval() -> None:
    clock = Clock()
    throttle = Throttle(1.0, clock)
    passed = []
    for _ in range(12):  # a keystroke every 0.25 s for 3 s
        passed.append(throttle.ready())
        clock.now += 0.25
    assert [i for i, ok in enumerate(passed) if ok] == [0, 4, 8]


def test_the_throttle_interval_is_configurable_and_reset_lets_the_next_through() -> None:
    clock = Clock()
    throttle = Throttle(2.5, clock)
    assert throttle.ready()
    clock.now += 2.4
    assert not throttle.ready()
    throttle.reset()  # typing stopped: the next keystroke starts typing again at once
    assert throttle.ready()
    clock.now += 2.5
    assert throttle.ready()

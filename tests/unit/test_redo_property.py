"""Redoing any suffix of the log after it was applied changes nothing (what a worker does after a rebalance)."""
from typing import Any

from hypothesis import given, settings

from streams.core import apply
from tests.unit.test_core_properties import build_log, fold, logs_steps


@settings(max_examples=300, deadline=None)
@given(logs_steps)
def test_redoing_any_suffix_of_the_log_changes_nothing(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    log = build_log(steps)
    final, _ = fold(log)
    for start in range(len(log)):
        states = dict(final)
        for e in log[start:]:
            states[e.user_id], changes = apply(states.get(e.user_id), e)
            assert changes == [], (start, e)
        assert states == final

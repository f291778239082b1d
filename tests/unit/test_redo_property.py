"""Redoing any suffix of the log after it was applied changes nothing (what a worker does after a rebalance),
however long: each event is applied at its log position (tests/unit/test_redo_by_position.py)."""
from typing import Any

from hypothesis import given, settings

from schemas.state import UserPresence
from streams.core import apply_at
from tests.unit.test_core_properties import build_log, logs_steps


@settings(max_examples=300, deadline=None)
@given(logs_steps)
def test_redoing_any_suffix_of_the_log_changes_nothing(steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    log = build_log(steps)
    final: dict[str, UserPresence | None] = {}
    for offset, e in enumerate(log):
        final[e.user_id], _ = apply_at(final.get(e.user_id), e, offset, 0)
    for start in range(len(log)):
        states = dict(final)
        for offset, e in enumerate(log[start:], start):
            states[e.user_id], changes = apply_at(states.get(e.user_id), e, offset, 0)
            assert changes == [], (start, e)
        assert states == final

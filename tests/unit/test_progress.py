"""Which time the sweeper judges a partition's deadlines by (streams/progress.py)."""

from __future__ import annotations

import pytest

from streams import progress
from streams.progress import STALLED_MS, sweep_time

T0 = 1_000_000


@pytest.fixture(autouse=True)
def fresh_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("_next_offsets", "_log_times", "_unmoved"):
        monkeypatch.setattr(progress, name, {})


def test_a_partition_read_to_its_end_is_judged_by_the_wall_clock() -> None:
    progress.processed(3, 9, at=T0 - 60_000)
    assert sweep_time(3, 10, 10, T0) == T0


def test_a_partition_behind_is_judged_by_the_last_event_read() -> None:
    progress.processed(3, 9, at=T0 - 60_000)
    assert sweep_time(3, 10, 500, T0) == T0 - 60_000


def test_a_backlog_that_is_read_stays_on_log_time() -> None:
    for step in range(10):
        now = T0 + step * STALLED_MS
        progress.processed(3, 9 + step, at=now - 60_000)
        assert sweep_time(3, 10 + step, 500, now) == now - 60_000


def test_a_log_that_grows_while_the_fold_waits_stays_on_log_time() -> None:
    # A fold held up (a busy worker, a long hole read) while records keep arriving: not a stall.
    progress.processed(3, 9, at=T0 - 60_000)
    for step in range(10):
        assert sweep_time(3, 10, 500 + step, T0 + step * STALLED_MS) == T0 - 60_000


def test_a_partition_where_nothing_moves_is_judged_by_the_wall_clock_after_a_while() -> None:
    # Faust skipped offsets 10-26 and nothing more comes: only a record written now shows the fold the hole.
    progress.processed(3, 9, at=T0 - 60_000)
    assert sweep_time(3, 10, 27, T0) == T0 - 60_000
    assert sweep_time(3, 10, 27, T0 + STALLED_MS - 1) == T0 - 60_000
    assert sweep_time(3, 10, 27, T0 + STALLED_MS) == T0 + STALLED_MS
    # The sweeper's record arrives: the log moved, and the fold reads on.
    assert sweep_time(3, 10, 28, T0 + STALLED_MS + 200) == T0 - 60_000

"""How far the fold has read each `presence.events` partition, in offsets and in log time.

The sweeper needs it to tell "this user stopped heartbeating" from "the worker has not read the
heartbeats yet": while a partition is behind, its deadlines are judged against the time of the
last event read, not the wall clock, so a backlog after an outage causes no false timeouts.
"""

from __future__ import annotations

_next_offsets: dict[int, int] = {}
_log_times: dict[int, int] = {}


def processed(partition: int, offset: int, at: int) -> None:
    _next_offsets[partition] = offset + 1
    _log_times[partition] = max(at, _log_times.get(partition, 0))


def next_offset(partition: int) -> int | None:
    return _next_offsets.get(partition)


def sweep_time(partition: int, next_offset: int | None, highwater: int | None, wall_now: int) -> int | None:
    """The time to judge deadlines by in `partition`, or None when it cannot be judged yet."""
    if highwater is None or next_offset is None:
        return None
    if next_offset >= highwater:
        return wall_now
    return _log_times.get(partition)

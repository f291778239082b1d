"""How far the fold has read each `presence.events` partition, in offsets and in log time.

The sweeper needs it to tell "this user stopped heartbeating" from "the worker has not read the
heartbeats yet": while a partition is behind, its deadlines are judged against the time of the
last event read, not the wall clock, so a backlog after an outage causes no false timeouts.

Except a partition where nothing moves: neither the fold nor the log's end. There the fold waits for
a record that will not come: Faust skipped some (streams/continuity.py), and the fold sees a hole
only when a later record arrives. After `STALLED_MS` such a partition is judged by the wall clock:
an expiry written then is that later record; the fold applies every unread record before it, and
the core re-checks each deadline against the event's own time, so nobody alive in them is timed out.
"""

from __future__ import annotations

STALLED_MS = 5000

_next_offsets: dict[int, int] = {}
_log_times: dict[int, int] = {}
_unmoved: dict[int, tuple[int, int, int]] = {}  # partition -> (next offset, highwater, wall time first seen)


def processed(partition: int, offset: int, at: int) -> None:
    _next_offsets[partition] = offset + 1
    _log_times[partition] = max(at, _log_times.get(partition, 0))


def next_offset(partition: int) -> int | None:
    return _next_offsets.get(partition)


def log_time(partition: int) -> int | None:
    """The latest event time read in the partition."""
    return _log_times.get(partition)


def sweep_time(partition: int, next_offset: int | None, highwater: int | None, wall_now: int) -> int | None:
    """The time to judge deadlines by in `partition`, or None when it cannot be judged yet."""
    if highwater is None or next_offset is None:
        return None
    if next_offset >= highwater:
        _unmoved.pop(partition, None)
        return wall_now
    offset, end, since = _unmoved.get(partition, (next_offset, highwater, wall_now))
    if (offset, end) != (next_offset, highwater):
        since = wall_now
    _unmoved[partition] = (next_offset, highwater, since)
    if wall_now - since >= STALLED_MS:
        return wall_now
    return _log_times.get(partition)

"""A user's timeline read from the log: the user's partition of `presence.events` folded through the
replay tables (`streams.replay.Tables`) into the timeline projection (`streams.timeline`).

Every record of the partition is folded, other users' too: the edges' leases in the partition decide
timeouts. The read stops at the partition's end as it was when the read began (`services.log_reader`),
and the timeline says so (`Timeline.offset`). The fold starts at the beginning of the partition, or
from a given `Tables` and offset (a snapshot of the partition's tables and the position after it).

Also the two things every reader of a timeline needs: the window a request asks for (`window`), and
the timeline as JSON (`as_json`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from aiokafka.errors import KafkaError

from schemas.codec import DecodeError, decode
from schemas.events import EventBatch
from schemas.topics import EVENTS, partition_for
from services import log_reader
from services.instants import instant
from services.representation import iso
from streams.replay import Tables
from streams.timeline import Timeline, TimelineFold

DAY_MS = 24 * 3600 * 1000
DEFAULT_WINDOW_MS = DAY_MS
MAX_WINDOW_MS = 31 * DAY_MS
READ_TIMEOUT_S = 30.0


class LogUnavailable(Exception):
    """The log could not be read to its end in time (the broker is down, or the partition is long)."""


async def user_timeline(bootstrap: str, partitions: int, user_id: str, from_ms: int, to_ms: int, *,
                        tables: Tables | None = None, start: int | None = None,
                        timeout_s: float | None = READ_TIMEOUT_S) -> Timeline:
    """The user's sessions and status intervals overlapping [from_ms, to_ms), as the log has them.

    `tables` and `start`: fold from a snapshot, the tables of the user's partition as of offset `start`
    (None, None: from the first record kept). Raises `LogUnavailable` after `timeout_s`.
    """
    partition = partition_for(user_id, partitions)
    tables = Tables() if tables is None else tables
    fold = TimelineFold(user_id)
    position = start or 0
    try:
        async with asyncio.timeout(timeout_s):
            async for records in log_reader.read(bootstrap, EVENTS.name, [log_reader.Span(partition, start=start)]):
                for record in records:
                    position = record.offset + 1
                    if record.value is None:
                        continue
                    try:
                        batch = decode(record.value, EventBatch)
                    except DecodeError:  # the processor dead-letters it: it changed nothing
                        continue
                    for step in tables.fold(partition, record.offset, batch):
                        fold.fold(step)
                await asyncio.sleep(0)  # a long partition must not hold the edge's event loop
    except (TimeoutError, KafkaError) as exc:
        raise LogUnavailable(f"could not read partition {partition} of {EVENTS.name}: {exc!r}") from exc
    return replace(fold.timeline().window(from_ms, to_ms), partition=partition, offset=position)


def window(from_raw: str | None, to_raw: str | None, now_ms: int) -> tuple[int, int]:
    """[from, to) of a request: `to` defaults to now, `from` to a day before `to`; at most 31 days."""
    to_ms = now_ms if to_raw is None else instant(to_raw, "to")
    from_ms = max(0, to_ms - DEFAULT_WINDOW_MS) if from_raw is None else instant(from_raw, "from")
    if from_ms >= to_ms:
        raise ValueError("`from` must be before `to`")
    if to_ms - from_ms > MAX_WINDOW_MS:
        raise ValueError(f"`to` - `from` must be at most {MAX_WINDOW_MS // DAY_MS} days")
    return from_ms, to_ms


def as_json(timeline: Timeline) -> dict[str, Any]:
    return {
        "user_id": timeline.user_id,
        "from": timeline.from_ms,
        "from_iso": iso(timeline.from_ms),
        "to": timeline.to_ms,
        "to_iso": iso(timeline.to_ms),
        "sessions": [
            {"connection_id": s.connection_id, "edge_id": s.edge_id, "device": s.device, "channel": s.channel,
             "start": s.start, "start_iso": iso(s.start), "end": s.end, "end_iso": iso(s.end),
             "end_reason": s.end_reason, "clipped": s.clipped}
            for s in timeline.sessions
        ],
        "statuses": [
            {"status": i.status, "status_text": i.status_text, "status_emoji": i.status_emoji,
             "start": i.start, "start_iso": iso(i.start), "end": i.end, "end_iso": iso(i.end), "cause": i.cause,
             "clipped": i.clipped}
            for i in timeline.statuses
        ],
        "position": {"partition": timeline.partition, "offset": timeline.offset},
    }

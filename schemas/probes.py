"""Readiness probes: how an edge learns that the processor folds every partition now.

An edge writes an `edge.probed` event into each partition of `presence.events`; the user stage
forwards it to the same partition of `presence.channel-changes`; the channel stage answers with a
`ProbeAnswered` on `presence.probes`. Both stages are on the path of every presence change, so an
answer says that a change written now would be folded and published.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from schemas.events import SCHEMA_VERSION
from schemas.topics import partition_for


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbeAnswered:
    """One record on `presence.probes` (key: the edge id): the probe went through both stages."""

    probe_id: str  # the `edge.probed` event's id
    edge_id: str
    events_partition: int
    channel_changes_partition: int
    worker_id: str
    at: int  # when the edge wrote the probe, UTC epoch milliseconds
    v: int = SCHEMA_VERSION


@cache
def probe_user_id(partition: int, partitions: int) -> str:
    """A reserved user id in `partition`: a probe sits where the records of that partition's users do."""
    n = 0
    while partition_for(f"~probe-{n}", partitions) != partition:
        n += 1
    return f"~probe-{n}"

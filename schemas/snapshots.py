"""Channel snapshots: the channel stage's table, written whole every snapshot interval, with the log
position it reflects, so a channel's members at a past instant are its snapshot plus the changes
after it (services/history.py), not a fold of the whole log.

One record per channel of a `presence.channel-changes` partition, then a closing record (`state`
None) that says how many came before it: a snapshot without its closing record (its writer died
mid-way) is incomplete, and readers skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import SCHEMA_VERSION
from schemas.state import ChannelState

# Every record carries its `snapshot_id` in this Kafka header too, so a reader looking for one channel
# counts the others' records without decoding them.
SNAPSHOT_HEADER = "snapshot"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSnapshot:
    """One record on `presence.channel-snapshots`: a channel of a snapshot of the channel stage's table,
    or the snapshot's closing record (`state` null). A snapshot is complete when its closing record
    follows `entries` records with its `snapshot_id`; each record also carries the id in its
    `snapshot` Kafka header."""

    snapshot_id: str  # the same in every record of one snapshot
    partition: int  # of `presence.channel-changes`
    position: int  # the first `presence.channel-changes` offset the snapshot does not reflect
    at: int  # the latest change time the snapshot reflects, UTC epoch milliseconds
    state: ChannelState | None = None  # None: the closing record
    entries: int = 0  # in the closing record: how many channel records the snapshot holds
    v: int = SCHEMA_VERSION

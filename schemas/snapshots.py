"""Snapshots: the processor's tables, written whole every snapshot interval with the log position they
reflect, so history starts from the newest snapshot before it instead of the log's start.

- Channel snapshots (the channel stage's table, per `presence.channel-changes` partition): a channel's
  members at a past instant are its snapshot plus the changes after it (services/history.py).
- User snapshots (the user stage's users and leases, per `presence.events` partition): a replay
  starts from them (`presence replay --from-snapshot`).

One record per table entry, then a closing record (no state) that says how many came before it: a
snapshot without its closing record (its writer died mid-way) is incomplete, and readers skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import SCHEMA_VERSION, USER_SCHEMA_VERSION
from schemas.state import ChannelState, EdgeLease, UserPresence

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


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSnapshot:
    """One record on `presence.user-snapshots`: a user or an edge's lease of a snapshot of the user
    stage's tables in one `presence.events` partition, or the snapshot's closing record (neither). A
    snapshot is complete when its closing record follows `entries` records with its `snapshot_id`."""

    snapshot_id: str  # the same in every record of one snapshot
    partition: int  # of `presence.events`
    position: int  # the first `presence.events` offset the snapshot may not reflect; a replay reads from there
    at: int  # the latest event time the user stage had read when it took the snapshot, UTC epoch milliseconds
    state: UserPresence | None = None
    lease: EdgeLease | None = None
    entries: int = 0  # in the closing record: how many user and lease records the snapshot holds
    v: int = USER_SCHEMA_VERSION

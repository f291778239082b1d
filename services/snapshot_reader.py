"""Reading the users snapshots (`presence.user-snapshots`): the newest complete one of a partition."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.codec import decode
from schemas.snapshots import UserSnapshot
from schemas.state import EdgeLease, UserPresence
from schemas.topics import USER_SNAPSHOTS
from services import log_reader

LOOKBACK_MS = 30 * 60 * 1000  # three snapshot intervals at the default 10 min


@dataclass(frozen=True, slots=True)
class UsersSnapshot:
    partition: int
    position: int  # the first `presence.events` offset to read after it
    at: int
    users: tuple[UserPresence, ...]
    leases: tuple[EdgeLease, ...]


async def newest_users_snapshot(bootstrap: str, partition: int, now_ms: int) -> UsersSnapshot | None:
    """The newest complete snapshot of the partition: looked for in the last `LOOKBACK_MS` of the
    topic by record time, then further back; None if the topic holds none."""
    lookback = LOOKBACK_MS
    while True:
        found = await _newest_since(bootstrap, partition, now_ms - lookback)
        if found is not None or lookback > now_ms:
            return found
        lookback *= 8


async def _newest_since(bootstrap: str, partition: int, since_ms: int) -> UsersSnapshot | None:
    newest: UsersSnapshot | None = None
    building: dict[str, list[UserSnapshot]] = {}
    span = log_reader.Span(partition, from_ms=max(since_ms, 0))
    async for batch in log_reader.read(bootstrap, USER_SNAPSHOTS.name, [span]):
        for record in batch:
            snapshot = decode(record.value, UserSnapshot)
            entries = building.setdefault(snapshot.snapshot_id, [])
            if snapshot.state is not None or snapshot.lease is not None:
                entries.append(snapshot)
                continue
            del building[snapshot.snapshot_id]
            if len(entries) == snapshot.entries:
                newest = UsersSnapshot(
                    partition, snapshot.position, snapshot.at,
                    tuple(e.state for e in entries if e.state is not None),
                    tuple(e.lease for e in entries if e.lease is not None),
                )
    return newest

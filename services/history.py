"""A channel's members at a past instant, from its snapshots and the changes after them.

What "at T" means: the channel as its changes stamped at or before T leave it, applied in log order.
Changes stamped later are left out even when the log has them earlier (one user's changes are in time
order; different users' changes reach the channel's partition in the order the processor wrote them).

How it is found, reading one partition of each topic, not the whole log:
1. `presence.channel-snapshots`, the channel's partition, from `SNAPSHOT_LOOKBACK_MS` before T (by
   record time; if none is found, 64 times that, then from the start): the newest complete snapshot whose time is at or
   before T, and the channel's record in it (none: the channel was empty then).
2. `presence.channel-changes`, the same partition, from the snapshot's position: the channel's
   changes stamped at or before T, folded with the channel stage's own `apply_member_change_at`.
   The read ends where the processor's writes are `SETTLE_MS` past T: a change stamped before T and
   written later than that (the processor was down that long) is not counted.
3. Erased users are left out (services/erasures.py): an erasure covers the past, so an answer for an
   instant at or before a user's erasure does not show the user either.
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass, replace

from schemas.changes import ChannelExpired, MemberJoined, MemberLeft, MemberTyping, MemberUpdated
from schemas.codec import DecodeError, decode, decode_change
from schemas.snapshots import SNAPSHOT_HEADER, ChannelSnapshot
from schemas.state import ChannelState
from schemas.topics import CHANNEL_CHANGES, CHANNEL_SNAPSHOTS, partition_for
from services import erasures, log_reader
from streams.channels import apply_member_change_at

SNAPSHOT_LOOKBACK_MS = 30 * 60 * 1000  # three snapshot intervals at the default 10 min
SETTLE_MS = 15 * 60 * 1000
CHANNEL_CHANGES_TYPES = (MemberJoined, MemberUpdated, MemberLeft, MemberTyping, ChannelExpired)


@dataclass(frozen=True, slots=True)
class ChannelAt:
    """A channel as it was at `at`: its state (None: no members), and the log position that answers."""

    channel: str
    at: int
    state: ChannelState | None
    partition: int
    position: int  # the first `presence.channel-changes` offset not read
    snapshot_position: int | None  # where the fold started (None: from the start of the log)


async def channel_at(bootstrap: str, partitions: int, channel: str, at: int) -> ChannelAt:
    partition = partition_for(channel, partitions)
    snapshot = await _snapshot_before(bootstrap, partition, channel, at)
    state, start = (snapshot.state, snapshot.position) if snapshot is not None else (None, None)
    key = channel.encode()
    position = start or 0
    span = log_reader.Span(partition, start=start)
    # aclosing: a read that stops early closes its consumer now, not when the generator is collected.
    async with aclosing(log_reader.read(bootstrap, CHANNEL_CHANGES.name, [span])) as batches:
        async for batch in batches:
            for record in batch:
                if record.timestamp > at + SETTLE_MS:
                    break
                position = record.offset + 1
                if record.key != key:
                    continue
                try:
                    change = decode_change(decode(record.value, dict))
                except DecodeError:  # the channel stage set it aside as a dead letter
                    continue
                if isinstance(change, CHANNEL_CHANGES_TYPES) and change.at <= at:
                    state, _ = apply_member_change_at(state, change, record.offset)
            else:
                continue
            break
    if state is not None:
        erased = await erasures.erased(bootstrap)
        if any(erasures.hides(erased, m.user_id, at) for m in state.members):
            state = replace(state, members=tuple(m for m in state.members if not erasures.hides(erased, m.user_id, at)),
                            typing=tuple(u for u in state.typing if not erasures.hides(erased, u, at)))
    return ChannelAt(channel, at, state if state is not None and state.members else None, partition, position,
                     start)


async def _snapshot_before(bootstrap: str, partition: int, channel: str, at: int) -> ChannelSnapshot | None:
    """The channel's record in the newest complete snapshot at or before `at` (its closing record when
    the channel was not in it); None when there is none."""
    for since in (at - SNAPSHOT_LOOKBACK_MS, at - 64 * SNAPSHOT_LOOKBACK_MS, 0):
        found = await _snapshot_between(bootstrap, partition, channel, at, since)
        if found is not None or since <= 0:
            return found
    return None


async def _snapshot_between(bootstrap: str, partition: int, channel: str, at: int, since: int
                            ) -> ChannelSnapshot | None:
    best: ChannelSnapshot | None = None
    pending: dict[str, tuple[int, ChannelSnapshot | None]] = {}  # snapshot id -> (records seen, the channel's)
    key = channel.encode()
    span = log_reader.Span(partition, from_ms=max(since, 0))
    async with aclosing(log_reader.read(bootstrap, CHANNEL_SNAPSHOTS.name, [span])) as batches:
        async for batch in batches:
            for record in batch:
                if record.timestamp > at + SETTLE_MS:
                    return best
                if record.key is not None and record.key != key:  # another channel's: counted, not decoded
                    snapshot_id = dict(record.headers).get(SNAPSHOT_HEADER, b"").decode()
                    seen, mine = pending.get(snapshot_id, (0, None))
                    pending[snapshot_id] = (seen + 1, mine)
                    continue
                snapshot = decode(record.value, ChannelSnapshot)
                seen, mine = pending.pop(snapshot.snapshot_id, (0, None))
                if snapshot.state is not None:
                    pending[snapshot.snapshot_id] = (seen + 1, snapshot)
                elif seen == snapshot.entries and snapshot.at <= at:
                    best = mine or snapshot
    return best

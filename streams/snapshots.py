"""The snapshot writer: every `PRESENCE_SNAPSHOT_INTERVAL_S`, the tables of each partition this worker
holds, whole, with the log position they reflect (schemas/snapshots.py): the channels of a
`presence.channel-changes` partition on `presence.channel-snapshots`, the users and leases of a
`presence.events` partition on `presence.user-snapshots`. A partition whose channels or users did not
change since its last snapshot writes none.

Channels: the channel agent tells the writer what it read (`applied`) before it awaits anything, so a
snapshot taken between two records reflects exactly the records before its position. The writer takes
every table and position before its first send: the agents go on while a send awaits. After a failover
the table is recovered from its changelog, which can be ahead of the records the agent reads again: no
snapshot of that partition is written until the agent has caught up with what the table holds. A
snapshot's time is the latest time of a change it holds, so a read for an instant before it never
starts from it.

Users: the position is the next record the user stage reads (`streams.progress`); the tables may hold
part of that record, or more after a failover. A replay from the position skips what a state already
holds by its log position, as the stage's own redo does, and a lease renewal already held changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from faust.types import TP

from schemas.codec import encode
from schemas.snapshots import SNAPSHOT_HEADER, ChannelSnapshot, UserSnapshot
from schemas.state import ChannelState, EdgeLease, UserPresence
from schemas.topics import CHANNEL_CHANGES, EVENTS, partition_for
from streams import metrics, progress
from streams.app import (
    app,
    channel_snapshots_topic,
    channels,
    lease_partition,
    leases,
    settings,
    user_snapshots_topic,
    users,
)

_positions: dict[int, int] = {}  # channel partition -> the next offset the channel agent reads
_written: dict[tuple[str, int], Sequence[object]] = {}  # (topic, partition) -> what its last snapshot held


def applied(partition: int, offset: int) -> None:
    _positions[partition] = offset + 1


@app.on_partitions_revoked.connect
def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    # Taken back later, the partition's table may be recovered ahead of what the agent reads again.
    revoked: set[TP] = args[0]
    for tp in revoked:
        _written.pop((tp.topic, tp.partition), None)
        if tp.topic == CHANNEL_CHANGES.name:
            _positions.pop(tp.partition, None)


def _latest_change(state: ChannelState) -> int:
    """The latest time of a change the state holds. Not always its last change's: a partition read
    late (a backlog) brings changes older than those already applied. Each user's changes come in
    time order, and the state keeps each user's last one, of departed users too until a change ten
    minutes newer comes."""
    return max((state.changed_at, *(applied.at for applied in state.applied_sources.values())))


def _owned(topic: str) -> list[int]:
    return sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topic)


def _unchanged(topic: str, partition: int, held: Sequence[object]) -> bool:
    """Whether the partition's tables hold what its last snapshot held (the same objects, mostly)."""
    if _written.get((topic, partition)) == held:
        return True
    _written[topic, partition] = held
    return False


@app.timer(interval=settings.snapshot_interval_s)  # type: ignore[untyped-decorator]
async def snapshot_tables() -> None:
    await _snapshot_channels()
    await _snapshot_users()


async def _snapshot_channels() -> None:
    # Tables and positions are taken together, before the first send: while a send awaits, the agents
    # go on, and a position read later would be ahead of the states taken before it.
    positions = dict(_positions)
    held: dict[int, list[ChannelState]] = defaultdict(list)
    for channel, state in list(channels.items()):
        held[partition_for(channel, settings.partitions)].append(state)
    for partition in _owned(CHANNEL_CHANGES.name):
        position = positions.get(partition)
        states = sorted(held[partition], key=lambda s: s.channel)
        if position is None or any(s.applied_offset >= position for s in states):
            continue
        if _unchanged(CHANNEL_CHANGES.name, partition, states):
            continue
        at = max((_latest_change(s) for s in states), default=0)
        snapshot_id = f"{settings.worker_id}:{partition}:{position}"
        base = ChannelSnapshot(snapshot_id=snapshot_id, partition=partition, position=position, at=at)
        entries: list[tuple[str, object]] = [(s.channel, replace(base, state=s)) for s in states]
        await _send(channel_snapshots_topic, partition, snapshot_id, entries, replace(base, entries=len(entries)))


async def _snapshot_users() -> None:
    positions = {partition: progress.next_offset(partition) for partition in _owned(EVENTS.name)}  # as above
    held_users: dict[int, list[UserPresence]] = defaultdict(list)
    for user_id, state in list(users.items()):
        held_users[partition_for(user_id, settings.partitions)].append(state)
    held_leases: dict[int, list[tuple[str, EdgeLease]]] = defaultdict(list)
    for key, lease in list(leases.items()):
        held_leases[lease_partition(key)].append((key, lease))
    log_times = {partition: progress.log_time(partition) for partition in positions}
    for partition, position in positions.items():
        states = sorted(held_users[partition], key=lambda s: s.user_id)
        partition_leases = sorted(held_leases[partition], key=lambda kv: kv[0])
        # Leases are renewed all the time; a replay reads the renewals after the position anyway.
        if position is None or _unchanged(EVENTS.name, partition, states):
            continue
        at = log_times[partition] or 0
        snapshot_id = f"{settings.worker_id}:{partition}:{position}"
        base = UserSnapshot(snapshot_id=snapshot_id, partition=partition, position=position, at=at)
        entries: list[tuple[str, object]] = [(s.user_id, replace(base, state=s)) for s in states]
        entries += [(key, replace(base, lease=lease)) for key, lease in partition_leases]
        await _send(user_snapshots_topic, partition, snapshot_id, entries, replace(base, entries=len(entries)))


async def _send(topic: Any, partition: int, snapshot_id: str, entries: list[tuple[str, object]],
                closing: object) -> None:
    headers = {SNAPSHOT_HEADER: snapshot_id.encode()}
    for key, record in entries:
        await topic.send(key=key.encode(), value=encode(record), partition=partition, headers=headers)
    await topic.send(key=None, value=encode(closing), partition=partition, headers=headers)
    metrics.SNAPSHOTS_WRITTEN.labels(topic.get_topic_name()).inc()

"""The snapshot writer: every `PRESENCE_SNAPSHOT_INTERVAL_S`, each channel partition this worker holds,
its channels whole, with the position they reflect (schemas/snapshots.py), on `presence.channel-snapshots`.

The channel agent tells it what it applied (`applied`) before it awaits anything, so a snapshot taken
between two records reflects exactly the records before its position. After a failover the table is
recovered from its changelog, which can be ahead of the records the agent has read again: no
snapshot of that partition is written until the agent has caught up with what the table holds.
A partition whose channels did not change since its last snapshot writes none. A snapshot's time is
the latest time of a change it holds, so a read for an instant before it never starts from it.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from faust.types import TP

from schemas.codec import encode
from schemas.snapshots import SNAPSHOT_HEADER, ChannelSnapshot
from schemas.state import ChannelState
from schemas.topics import CHANNEL_CHANGES, partition_for
from streams.app import app, channel_snapshots_topic, channels, settings

_positions: dict[int, int] = {}  # partition -> the next offset the channel agent reads
_written: dict[int, list[ChannelState]] = {}  # partition -> the states of its last snapshot


def applied(partition: int, offset: int) -> None:
    _positions[partition] = offset + 1


@app.on_partitions_revoked.connect
def _forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    # Taken back later, the partition's table may be recovered ahead of what the agent reads again.
    revoked: set[TP] = args[0]
    for tp in revoked:
        if tp.topic == CHANNEL_CHANGES.name:
            _positions.pop(tp.partition, None)
            _written.pop(tp.partition, None)


def _latest_change(state: ChannelState) -> int:
    """The latest time of a change the state holds. Not always its last change's: a partition read
    late (a backlog) brings changes older than those already applied. Each user's changes come in
    time order, and the state keeps each user's last one, of departed users too until a change ten
    minutes newer comes."""
    return max((state.changed_at, *(applied.at for applied in state.applied_sources.values())))


@app.timer(interval=settings.snapshot_interval_s)  # type: ignore[untyped-decorator]
async def snapshot_channels() -> None:
    owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == CHANNEL_CHANGES.name}
    held: dict[int, list[ChannelState]] = defaultdict(list)
    for channel, state in list(channels.items()):
        held[partition_for(channel, settings.partitions)].append(state)
    for partition in sorted(owned):
        position = _positions.get(partition)
        states = sorted(held[partition], key=lambda s: s.channel)
        if position is None or states == _written.get(partition) or any(s.applied_offset >= position for s in states):
            continue
        _written[partition] = states
        at = max((_latest_change(s) for s in states), default=0)
        snapshot_id = f"{settings.worker_id}:{partition}:{position}"
        headers = {SNAPSHOT_HEADER: snapshot_id.encode()}
        for state in states:
            record = ChannelSnapshot(snapshot_id=snapshot_id, partition=partition, position=position, at=at,
                                     state=state)
            await channel_snapshots_topic.send(key=state.channel.encode(), value=encode(record), partition=partition,
                                               headers=headers)
        closing = ChannelSnapshot(snapshot_id=snapshot_id, partition=partition, position=position, at=at,
                                  entries=len(states))
        await channel_snapshots_topic.send(key=None, value=encode(closing), partition=partition, headers=headers)

"""Replaying the run's own log through the pure cores, in this process, without Kafka or Faust.

Input: the `presence.events` record values read after the run (`kafka_side.census` keeps them).
Measured: decoding the records, `streams.core.apply_at` per event (stage 1, users) and
`streams.channels.apply_member_change_at` per member change (stage 2, channels), as the worker does
between Kafka reads and writes. The place of a record in the list stands in for its offset: it grows
with the offset within each partition, which is all the position checks need.
"""

from __future__ import annotations

import time
from typing import Any

from schemas.changes import MemberJoined, MemberLeft, MemberTyping, MemberUpdated
from schemas.codec import decode
from schemas.events import EventBatch
from streams.channels import apply_member_change_at
from streams.core import apply_at

MEMBER_CHANGES = MemberJoined | MemberUpdated | MemberLeft | MemberTyping


def replay(values: list[bytes]) -> dict[str, Any]:
    t0 = time.perf_counter()
    batches = [decode(v, EventBatch) for v in values]
    t_decode = time.perf_counter() - t0
    events = [(position, index, e) for position, b in enumerate(batches) for index, e in enumerate(b.events)]
    users: dict[str, Any] = {}
    member_changes = []
    t0 = time.perf_counter()
    for position, index, event in events:
        before = users.get(event.user_id)
        after, changes = apply_at(before, event, position, index)
        if after is not before:
            users[event.user_id] = after
            for change in changes:
                if isinstance(change, MEMBER_CHANGES):
                    member_changes.append(change)
    t_core = time.perf_counter() - t0
    channels: dict[str, Any] = {}
    views = 0
    t0 = time.perf_counter()
    for position, change in enumerate(member_changes):
        state, view = apply_member_change_at(channels.get(change.channel), change, position)
        if view is not None:
            channels[change.channel] = state
            views += 1
    t_channels = time.perf_counter() - t0
    n = len(events)
    return {
        "records": len(values),
        "events": n,
        "member_changes": len(member_changes),
        "channel_views": views,
        "decode_s": t_decode,
        "core_s": t_core,
        "channels_s": t_channels,
        "core_events_per_s": n / t_core if t_core else None,
        "core_and_channels_events_per_s": n / (t_core + t_channels) if t_core + t_channels else None,
        "decode_core_channels_events_per_s": n / (t_decode + t_core + t_channels) if n else None,
    }

"""The sweeper: turns passed deadlines into expiry events in the log (`streams.core.due_events`):
connection timeouts, typing expiries, status expiries, auto-away and users offline for longer than
`PRESENCE_USER_RETENTION_S`; and channels that stayed empty for `PRESENCE_CHANNEL_RETENTION_S`
into `channel.expired` changes.

It runs on every worker but looks only at users of the `presence.events` partitions this worker
owns, and writes each timeout to the user's own partition, where the fold applies it like any
other event. The fold re-checks the deadline against the event's time, so activity that
landed after the sweep wins.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import cast

from faust.transport.consumer import Consumer
from faust.types import TP

from schemas.changes import ChannelExpired
from schemas.codec import encode
from schemas.events import Event, EventBatch
from schemas.state import EdgeLease
from schemas.topics import CHANNEL_CHANGES, EVENTS, batch_key, partition_for
from streams import metrics, progress
from streams.app import app, channel_changes_topic, channels, events_topic, lease_partition, leases, settings, users
from streams.core import due_events

# An expiry already written is not written again until the fold has had time to apply it.
RESEND_AFTER_MS = 5000
_sent: dict[str, int] = {}


@app.timer(interval=settings.sweep_interval_s)
async def sweep() -> None:
    began, wall_now = time.monotonic(), int(time.time() * 1000)
    sweep_times, lags = {}, {}
    for tp in app.consumer.assignment():
        if tp.topic == EVENTS.name:
            next_offset, highwater = _next_offset(tp), _highwater(tp)
            sweep_times[tp.partition] = progress.sweep_time(tp.partition, next_offset, highwater, wall_now)
            if next_offset is not None and highwater is not None:
                lags[tp.partition] = highwater - next_offset
    metrics.lag_sampled(lags)
    leases_by_partition: dict[int, dict[str, EdgeLease]] = defaultdict(dict)
    for key, lease in list(leases.items()):
        leases_by_partition[lease_partition(key)][lease.edge_id] = lease
    due: dict[int, list[Event]] = defaultdict(list)
    forget_after_ms = int(settings.user_retention_s * 1000)
    for user_id, state in list(users.items()):
        partition = partition_for(user_id, settings.partitions)
        now = sweep_times.get(partition)
        if now is not None:
            lease_of = leases_by_partition[partition].get
            for event in due_events(state, now, settings.worker_id, forget_after_ms, lease_of):
                if _sent.get(event.event_id, 0) < wall_now:
                    due[partition].append(event)
    for events in due.values():
        _sent.update((e.event_id, wall_now + RESEND_AFTER_MS) for e in events)
    for event_id in [k for k, until in _sent.items() if until < wall_now]:
        del _sent[event_id]
    for partition, events in due.items():
        key = batch_key(e.user_id for e in events)
        await events_topic.send(key=key, value=encode(EventBatch(events=tuple(events))), partition=partition)
        for event in events:
            metrics.SWEEPER_EVENTS.labels(event.type).inc()
    await _expire_channels(wall_now)
    metrics.SWEEP_SECONDS.observe(time.monotonic() - began)


async def _expire_channels(wall_now: int) -> None:
    # Judged by the wall clock: the expiry is appended to the channel's partition, after any join
    # still unread there, and a channel that changed in between ignores it.
    owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == CHANNEL_CHANGES.name}
    retention_ms = int(settings.channel_retention_s * 1000)
    for channel, state in list(channels.items()):
        if state.members or state.changed_at + retention_ms > wall_now:
            continue
        if partition_for(channel, settings.partitions) not in owned:
            continue
        expiry = ChannelExpired(change_id=f"expired:{channel}@{state.changed_at}", user_id="", at=wall_now,
                                channel=channel, empty_since=state.changed_at)
        if _sent.get(expiry.change_id, 0) < wall_now:
            _sent[expiry.change_id] = wall_now + RESEND_AFTER_MS
            await channel_changes_topic.send(key=channel.encode(), value=encode(expiry))
            metrics.SWEEPER_EVENTS.labels(expiry.type).inc()


def _next_offset(tp: TP) -> int | None:
    known = progress.next_offset(tp.partition)
    if known is not None:
        return known
    # Nothing read since assignment: Faust's read offset is then the committed offset.
    consumer = cast(Consumer, app.consumer)  # the transport's consumer; ConsumerT does not declare it
    return consumer._read_offset.get(tp)


def _highwater(tp: TP) -> int | None:
    try:
        return app.consumer.highwater(tp)
    except Exception:  # no fetch answered for this partition yet
        return None

"""Agents: the thin adapters that feed records to the pure cores and write what they emit.

Stage 1 (`fold_events`, partitioned by user): `presence.events` -> users table ->
`presence.changes` (every change), `presence.channel-changes` (member changes, keyed by
channel) and `presence.users` (the user's view, when it changed).
Stage 2 (`fold_member_changes`, partitioned by channel): channels table -> `presence.channels`.
Both pass an edge's readiness probe on to `presence.probes` (schemas/probes.py). Stage 1 also keeps
each edge's newest lease per partition (`edge.leased`) in the `leases` table, for the sweeper, and
records each `user.erased` it folds on `presence.erasures` (schemas/erasures.py).
"""

from __future__ import annotations

import logging
from typing import Any

from schemas.changes import (
    Change,
    ChannelExpired,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    ProbeForwarded,
)
from schemas.codec import DecodeError, decode, decode_change, encode
from schemas.dead_letters import DeadLetter
from schemas.erasures import UserErasure
from schemas.events import EdgeLeased, EdgeProbed, Event, EventBatch, PresenceUpdated, UserErased
from schemas.probes import ProbeAnswered
from schemas.state import EdgeLease
from streams import metrics, progress, snapshots
from streams.app import (
    app,
    changes_topic,
    channel_changes_topic,
    channels,
    channels_topic,
    dead_letters_topic,
    erasures_topic,
    events_topic,
    lease_key,
    leases,
    probes_topic,
    settings,
    users,
    users_topic,
)
from streams.channels import apply_member_change_at
from streams.continuity import InOrder, LogReader, Record
from streams.core import LeaseOf, apply_at, renewed, user_view

log = logging.getLogger(__name__)

in_order = InOrder(app, LogReader(settings.bootstrap_servers, group_id=app.conf.id))


@app.agent(events_topic)
async def fold_events(stream: Any) -> None:
    async for record in in_order.records(stream):
        try:
            batch = decode(record.value, EventBatch)
        except DecodeError as exc:
            await _dead_letter(record, record.value, exc)
            continue
        lease_of = _leases_in(record.partition)
        for index, event in enumerate(batch.events):
            if isinstance(event, EdgeProbed):
                await _forward_probe(event, record.partition)
                continue
            if isinstance(event, EdgeLeased):
                _renew(event, record.partition)
                continue
            try:
                await _fold(event, record.offset, index, lease_of)
                metrics.EVENTS_FOLDED.labels(event.type).inc()
            except Exception as exc:  # one event that breaks the fold must not stop its partition
                await _dead_letter(record, encode(event), exc)
        last_at = max((e.at for e in batch.events), default=0)
        progress.processed(record.partition, record.offset, last_at)


def _leases_in(partition: int) -> LeaseOf:
    def lease_of(edge_id: str) -> EdgeLease | None:
        return leases.get(lease_key(edge_id, partition))

    return lease_of


async def _fold(event: Event, offset: int, index: int, lease_of: LeaseOf) -> None:
    before = users.get(event.user_id)
    after, changes = apply_at(before, event, offset, index, lease_of)
    shown = None if before is None or before.forgotten else before  # what the views show of the user
    key = event.user_id.encode()
    if isinstance(event, UserErased):
        # Also when a redo skips it by position: the record may not have been written the first time,
        # and writing it again changes nothing (the same key and value).
        erasure = UserErasure(user_id=event.user_id, erased_at=event.at, event_id=event.event_id)
        await erasures_topic.send(key=key, value=encode(erasure))
    if after is before:
        if shown is not None and isinstance(event, PresenceUpdated):
            # A repeated update (the same Idempotency-Key) changes nothing but is answered like the
            # first, so an edge waiting to read that write (`wait=true`) is not left waiting.
            await users_topic.send(key=key, value=encode(user_view(shown, event.event_id)))
        return
    if after is None or after.forgotten:
        # An erasure's changes (the user leaves every channel, goes offline) go out before the tombstones.
        for change in changes:
            await _publish(change)
        # Tombstones: compaction then removes the user from the views and, once the marker that
        # holds its log position is forgotten too, from the changelog.
        if after is None:
            del users[event.user_id]
        else:
            users[event.user_id] = after
        if shown is not None:
            await users_topic.send(key=key, value=None)
        return
    users[event.user_id] = after
    for change in changes:
        await _publish(change)
    view = user_view(after, event.event_id)
    # Every update is answered with a view, even one that changed nothing visible, so an edge
    # waiting to read its write sees it applied.
    updated = isinstance(event, PresenceUpdated)
    if updated or shown is None or user_view(shown, event.event_id) != view:
        await users_topic.send(key=key, value=encode(view))


def _renew(lease: EdgeLeased, partition: int) -> None:
    key = lease_key(lease.edge_id, partition)
    held = leases.get(key)
    lease_now = renewed(held, lease)
    if lease_now is not held:
        leases[key] = lease_now


async def _forward_probe(probe: EdgeProbed, partition: int) -> None:
    forwarded = ProbeForwarded(change_id=probe.event_id, user_id=probe.user_id, at=probe.at, edge_id=probe.edge_id,
                               events_partition=partition)
    await channel_changes_topic.send(key=probe.edge_id.encode(), value=encode(forwarded), partition=partition)


async def _answer_probe(probe: ProbeForwarded, partition: int) -> None:
    answer = ProbeAnswered(probe_id=probe.change_id, edge_id=probe.edge_id, events_partition=probe.events_partition,
                           channel_changes_partition=partition, worker_id=settings.worker_id, at=probe.at)
    await probes_topic.send(key=probe.edge_id.encode(), value=encode(answer), partition=partition)


async def _dead_letter(record: Record, value: bytes, exc: Exception) -> None:
    log.error("dead letter from %s/%s/%s: %r", record.topic, record.partition, record.offset, exc)
    letter = DeadLetter(
        topic=record.topic, partition=record.partition, offset=record.offset, error=repr(exc),
        value=value.decode(errors="replace"), worker_id=settings.worker_id,
    )
    await dead_letters_topic.send(key=record.key, value=encode(letter))
    metrics.DEAD_LETTERS.labels(record.topic).inc()


async def _publish(change: Change) -> None:
    value = encode(change)
    await changes_topic.send(key=change.user_id.encode(), value=value)
    metrics.CHANGES_EMITTED.labels(change.type).inc()
    if isinstance(change, MemberJoined | MemberUpdated | MemberLeft | MemberTyping):
        await channel_changes_topic.send(key=change.channel.encode(), value=value)


@app.agent(channel_changes_topic)
async def fold_member_changes(stream: Any) -> None:
    async for record in in_order.records(stream):
        # Nothing below awaits before the table holds this record's change: a snapshot between two
        # records reflects exactly those before its position.
        snapshots.applied(record.partition, record.offset)
        try:
            change = decode_change(decode(record.value, dict))
            if isinstance(change, ProbeForwarded):
                await _answer_probe(change, record.partition)
                continue
            if not isinstance(change, MemberJoined | MemberUpdated | MemberLeft | MemberTyping | ChannelExpired):
                raise DecodeError(f"{change.type} is not a channel change")
            before = channels.get(change.channel)
            state, view = apply_member_change_at(before, change, record.offset)
        except Exception as exc:  # as above: the partition goes on
            await _dead_letter(record, record.value, exc)
            continue
        key = change.channel.encode()
        if state is None:
            if before is not None:
                # Tombstones: compaction then removes the channel from the changelog and the views.
                del channels[change.channel]
                await channels_topic.send(key=key, value=None)
        elif view is not None:
            channels[change.channel] = state
            await channels_topic.send(key=key, value=encode(view))

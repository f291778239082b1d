"""Agents: the thin adapters that feed records to the pure cores and write what they emit.

Stage 1 (`fold_events`, partitioned by user): `presence.events` -> users table ->
`presence.changes` (every change), `presence.channel-changes` (member changes, keyed by
channel) and `presence.users` (the user's view, when it changed).
Stage 2 (`fold_member_changes`, partitioned by channel): channels table -> `presence.channels`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from schemas.changes import Change, MemberJoined, MemberLeft, MemberTyping, MemberUpdated
from schemas.codec import DecodeError, decode, decode_change, encode
from schemas.events import EventBatch, PresenceUpdated
from streams import progress
from streams.app import (
    app,
    changes_topic,
    channel_changes_topic,
    channels,
    channels_topic,
    events_topic,
    users,
    users_topic,
)
from streams.channels import apply_member_change
from streams.core import apply, user_view

log = logging.getLogger(__name__)


@app.agent(events_topic)
async def fold_events(stream: Any) -> None:
    async for record in stream.events():
        try:
            batch = decode(record.value, EventBatch)
        except DecodeError as exc:
            log.error("skipping undecodable record at %s/%s: %s", record.message.partition,
                      record.message.offset, exc)
            continue
        for event in batch.events:
            before = users.get(event.user_id)
            after, changes = apply(before, event)
            if after is before:
                continue
            users[event.user_id] = after
            for change in changes:
                await _publish(change)
            view = user_view(after, event.event_id)
            # Every update is answered with a view, even one that changed nothing visible, so an
            # edge waiting to read its write sees it applied.
            updated = isinstance(event, PresenceUpdated)
            if updated or before is None or replace(user_view(before), event_id=view.event_id) != view:
                await users_topic.send(key=event.user_id.encode(), value=encode(view))
        last_at = max((e.at for e in batch.events), default=0)
        progress.processed(record.message.partition, record.message.offset, last_at)


async def _publish(change: Change) -> None:
    value = encode(change)
    await changes_topic.send(key=change.user_id.encode(), value=value)
    if isinstance(change, MemberJoined | MemberUpdated | MemberLeft | MemberTyping):
        await channel_changes_topic.send(key=change.channel.encode(), value=value)


@app.agent(channel_changes_topic)
async def fold_member_changes(stream: Any) -> None:
    async for value in stream:
        try:
            change = decode_change(decode(value, dict))
        except DecodeError as exc:
            log.error("skipping undecodable member change: %s", exc)
            continue
        if not isinstance(change, MemberJoined | MemberUpdated | MemberLeft | MemberTyping):
            continue
        state, view = apply_member_change(channels.get(change.channel), change)
        if view is not None:
            channels[change.channel] = state
            await channels_topic.send(key=change.channel.encode(), value=encode(view))

"""Typing indicators through the log and the core: broadcast as the set typing, expiring, throttled."""

from __future__ import annotations

import asyncio
import time
import uuid

from schemas.events import TypingStarted
from tests.integration.client import heartbeating
from tests.integration.frames import diff_with, typing_is, user
from tests.integration.log import logged_events
from tests.integration.stack import Stack


async def joined_pair(connect, channel: str):  # type: ignore[no-untyped-def]
    watcher_id, typist_id = user("watcher"), user("typist")
    watcher, typist = await connect(watcher_id), await connect(typist_id)
    await watcher.join(channel)
    await typist.join(channel)
    await watcher.next(diff_with(channel, "joins", typist_id))
    return watcher, typist, typist_id


async def test_typing_start_and_stop_are_broadcast_as_the_set_typing(connect, channel: str) -> None:
    watcher, typist, typist_id = await joined_pair(connect, channel)
    await typist.send(type="typing.start", channel=channel)
    await watcher.next(typing_is(channel, [typist_id]))
    await typist.send(type="typing.stop", channel=channel)
    await watcher.next(typing_is(channel, []))


async def test_typing_expires_after_the_typing_timeout(connect, channel: str) -> None:
    watcher, typist, typist_id = await joined_pair(connect, channel)
    await typist.send(type="typing.start", channel=channel, timeout_s=1)
    await watcher.next(typing_is(channel, [typist_id]))
    started = time.monotonic()
    after = len(watcher.frames)
    await watcher.next(typing_is(channel, []), after=after, timeout_s=5)
    assert 0.5 <= time.monotonic() - started <= 3


async def test_typing_is_cleared_when_the_user_leaves_or_disconnects(connect, channel: str) -> None:
    watcher, typist, typist_id = await joined_pair(connect, channel)
    await typist.send(type="typing.start", channel=channel, timeout_s=3)
    await watcher.next(typing_is(channel, [typist_id]))
    await typist.close()
    left = await watcher.next(diff_with(channel, "leaves", typist_id))
    assert left["typing"] == []


async def test_typing_on_every_keystroke_writes_at_most_one_event_per_second(
    stack: Stack, connect, channel: str
) -> None:
    watcher, typist, typist_id = await joined_pair(connect, channel)
    started = time.monotonic()
    for _ in range(40):  # 40 keystrokes in about 2 s
        await typist.send(type="typing.start", channel=channel)
        await asyncio.sleep(0.05)
    elapsed = time.monotonic() - started
    await watcher.next(typing_is(channel, [typist_id]))
    starts = [e for e in await logged_events(stack.bootstrap)
              if isinstance(e, TypingStarted) and e.user_id == typist_id]
    assert 1 <= len(starts) <= int(elapsed) + 1


async def test_typing_in_a_channel_not_joined_is_rejected(connect, channel: str) -> None:
    client = await connect(user("stranger"))
    before = len(client.frames)
    await client.send(type="typing.start", channel=channel)
    assert (await client.error(after=before))["code"] == "channel.not_joined"


async def test_typing_timeout_requests_are_capped(connect) -> None:
    channel = f"room-{uuid.uuid4().hex[:6]}"
    watcher, typist, typist_id = await joined_pair(connect, channel)
    await typist.send(type="typing.start", channel=channel, timeout_s=60)  # the policy caps it at 3 s
    async with heartbeating(watcher, typist):  # silent, both would be closed at their 3 s timeout
        await watcher.next(typing_is(channel, [typist_id]))
        after = len(watcher.frames)
        await watcher.next(typing_is(channel, []), after=after, timeout_s=6)

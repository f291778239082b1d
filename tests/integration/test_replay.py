"""Replaying `presence.events` from offset 0 through the pure core rebuilds the live processor's table.

Runs after the other integration modules (see conftest.py), so the log holds
every kind of event they produced: joins, leaves, updates, drops, timeouts, a processor restart.
"""

from __future__ import annotations

import asyncio
import time

from schemas.codec import decode
from schemas.state import UserPresence
from schemas.topics import USERS_CHANGELOG
from streams.core import apply
from tests.integration.log import logged_events, read_all
from tests.integration.stack import Stack


async def replayed_and_live(stack: Stack) -> tuple[dict[str, UserPresence], dict[str, UserPresence]]:
    replayed: dict[str, UserPresence] = {}
    for event in await logged_events(stack.bootstrap):
        state, _ = apply(replayed.get(event.user_id), event)
        if state is None:  # forgotten (offline beyond the retention)
            replayed.pop(event.user_id, None)
        else:
            replayed[event.user_id] = state
    live: dict[str, UserPresence] = {}
    for record in sorted(await read_all(stack.bootstrap, USERS_CHANGELOG), key=lambda r: r.offset):
        if record.value is None:  # a tombstone
            live.pop(record.key.decode(), None)
        else:
            live[record.key.decode()] = decode(record.value, UserPresence)
    return replayed, live


async def test_replaying_the_log_rebuilds_the_live_table(stack: Stack) -> None:
    deadline = time.monotonic() + 60
    while True:  # the worker may still be applying the last timeouts
        replayed, live = await replayed_and_live(stack)
        if replayed == live or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert len(replayed) >= 3
    assert {u for u, s in replayed.items() if s.online} == {u for u, s in live.items() if s.online}
    assert replayed == live

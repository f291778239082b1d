"""Replaying `presence.events` from offset 0 through the pure core (`apply_at`, each event at its log
position) rebuilds the live processor's table.

Runs after the other integration modules (see conftest.py), so the log holds
every kind of event they produced: joins, leaves, updates, drops, timeouts, a processor restart.
"""

from __future__ import annotations

import asyncio
import time

from schemas.codec import decode
from schemas.events import EdgeLeased
from schemas.state import EdgeLease, UserPresence
from schemas.topics import USERS_CHANGELOG, partition_for
from streams.core import apply_at, renewed
from tests.integration.client import heartbeating
from tests.integration.log import logged_events, logged_positions, read_all
from tests.integration.stack import PARTITIONS, Stack


async def replayed_and_live(stack: Stack) -> tuple[dict[str, UserPresence], dict[str, UserPresence]]:
    replayed: dict[str, UserPresence] = {}
    leases: dict[tuple[str, int], EdgeLease] = {}  # (edge id, partition) -> its lease, as the worker's table
    for offset, index, event in await logged_positions(stack.bootstrap):
        partition = partition_for(event.user_id, PARTITIONS)
        if isinstance(event, EdgeLeased):
            leases[event.edge_id, partition] = renewed(leases.get((event.edge_id, partition)), event)
            continue
        state, _ = apply_at(replayed.get(event.user_id), event, offset, index,
                            lambda edge_id, p=partition: leases.get((edge_id, p)))
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


async def test_replaying_the_log_rebuilds_the_live_table(stack: Stack, connect) -> None:
    # Most users of the earlier tests are offline beyond the retention by now, hence forgotten in
    # both; these stay, so the comparison covers live state too.
    stayers = [await connect(f"stayer-{n}") for n in range(3)]
    async with heartbeating(*stayers):
        for client in stayers:
            await client.send(type="update", metadata={"replayed": True})
        deadline = time.monotonic() + 60
        while True:  # the worker may still be applying the last events and timeouts
            replayed, live = await replayed_and_live(stack)
            if (replayed == live and all(c.user_id in live for c in stayers)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    forgotten = {e.user_id for e in await logged_events(stack.bootstrap)} - replayed.keys()
    assert {c.user_id for c in stayers} <= replayed.keys() and forgotten
    assert {u for u, s in replayed.items() if s.online} == {u for u, s in live.items() if s.online}
    assert replayed == live

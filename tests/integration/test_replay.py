"""Replaying `presence.events` from offset 0 through the pure core (`apply_at`, each event at its log
position) rebuilds the live processor's table.

Runs after the other integration modules (see conftest.py), so the log holds
every kind of event they produced: joins, leaves, updates, drops, timeouts, a processor restart.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time

import pytest

from bench.recorded_log import Recorded
from schemas.codec import decode
from schemas.events import EdgeLeased
from schemas.state import EdgeLease, UserPresence
from schemas.topics import USERS_CHANGELOG, partition_for
from streams.core import apply_at, renewed
from tests.integration.client import heartbeating
from tests.integration.log import logged_events, logged_positions, read_all
from tests.integration.stack import PARTITIONS, ROOT, Stack


async def replayed_and_live(stack: Stack) -> tuple[dict[str, UserPresence], dict[str, UserPresence]]:
    replayed: dict[str, UserPresence] = {}
    leases: dict[tuple[str, int], EdgeLease] = {}  # (edge id, partition) -> its lease, as the worker's table
    for offset, index, event in await logged_positions(stack.bootstrap):
        partition = partition_for(event.user_id, PARTITIONS)
        if isinstance(event, EdgeLeased):
            leases[event.edge_id, partition] = renewed(leases.get((event.edge_id, partition)), event)
            continue
        state, _ = apply_at(replayed.get(event.user_id), event, offset, index,
                            lambda edge_id, p=partition: leases.get((edge_id, p)), announce=False)
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


@pytest.mark.timeout(600)
async def test_replaying_the_log_rebuilds_the_live_table(stack: Stack, connect) -> None:
    # Most users of the earlier tests are offline beyond the retention by now, hence forgotten in
    # both; these stay, so the comparison covers live state too.
    stayers = [await connect(f"stayer-{n}") for n in range(3)]
    async with heartbeating(*stayers):
        for client in stayers:
            await client.send(type="update", metadata={"replayed": True})
        # Each pass reads the whole log of the suite (over 100,000 recorded events among them).
        deadline = time.monotonic() + 300
        while True:  # the worker may still be applying the last events and timeouts
            replayed, live = await replayed_and_live(stack)
            if (replayed == live and all(c.user_id in live for c in stayers)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    forgotten = {e.user_id for e in await logged_events(stack.bootstrap)} - replayed.keys()
    assert {c.user_id for c in stayers} <= replayed.keys() and forgotten
    assert {u for u, s in replayed.items() if s.online} == {u for u, s in live.items() if s.online}
    assert replayed == live


async def presence_replay(stack: Stack, *args: str) -> dict[str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "replay", *args, env=stack.env(), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    printed = stdout.decode()
    found = re.search(r"replayed +([\d,]+) events.*\nusers.*\(([\d,]+) online\).*\nstate hash (\w+)\n"
                      r"live hash +(\w+)", printed)
    assert found, printed
    return {"events": found[1].replace(",", ""), "online": found[2].replace(",", ""), "state": found[3],
            "live": found[4], "printed": printed}


@pytest.mark.timeout(600)
async def test_presence_replay_of_a_recorded_log_gives_the_live_tables_hash(stack: Stack, recorded: Recorded
                                                                           ) -> None:
    deadline = time.monotonic() + 400
    while True:  # until the worker has folded the recorded log and timed out what it made due
        replayed = await presence_replay(stack)
        if replayed["state"] == replayed["live"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)

    assert recorded.events >= 100_000 and int(replayed["events"]) >= recorded.events, replayed["printed"]
    assert int(replayed["online"]) >= 100, replayed["printed"]
    assert replayed["state"] == replayed["live"], replayed["printed"]

    # From each partition's newest users snapshot: the same tables, from a fraction of the log. (The
    # live tables may have moved on since: the stack keeps timing out and forgetting earlier tests' users.)
    while True:
        from_snapshot = await presence_replay(stack, "--from-snapshot")
        if from_snapshot["state"] == from_snapshot["live"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(2)
    assert from_snapshot["state"] == from_snapshot["live"], from_snapshot["printed"]
    assert int(from_snapshot["events"]) < int(replayed["events"]) // 2, from_snapshot["printed"]

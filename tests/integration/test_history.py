"""Point in time: `GET /realtime/channels/{channel}/presence?at=T` and `presence at CHANNEL T` answer a
channel's members as the log says they were at T, from the channel snapshots and the changes after them.

The independent oracle (tests/oracle.py) folds every partition's events stamped at or before T, with the
partition's leases, and lists who was shown online in each channel.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from typing import Any

import httpx
import orjson
import pytest

from schemas.events import Event
from schemas.topics import partition_for
from tests import oracle
from tests.integration import recorded_log
from tests.integration.log import logged_positions
from tests.integration.stack import PARTITIONS, ROOT, Stack

USERS, CHANNELS = 300, 6
SPAN_MS = 600_000


def expected_at(events: list[Event], at: int) -> dict[str, dict[str, str]]:
    """Channel -> {user: status} as the oracle folds the events stamped at or before `at`."""
    by_partition: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_partition[partition_for(event.user_id, PARTITIONS)].append(event)
    members: dict[str, dict[str, str]] = defaultdict(dict)
    for logged in by_partition.values():
        users: dict[str, oracle.Expected] = {}
        leases: oracle.Leases = {}
        for event in logged:
            if event.at <= at:
                oracle.take(users, event, leases)
        for channel, ids in oracle.expected_members(users).items():
            members[channel].update({u: oracle.expected_view(users[u])["status"] for u in ids})
    return members


async def answered_at(http: httpx.AsyncClient, token: str, channel: str, at: int) -> dict[str, Any]:
    response = await http.get(f"/realtime/channels/{channel}/presence", params={"at": str(at), "limit": "1000"},
                              headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.timeout(400)
async def test_channel_presence_at_past_instants_equals_the_oracle(stack: Stack) -> None:
    start = int(time.time() * 1000) - SPAN_MS - 60_000
    await recorded_log.produce(stack.bootstrap, recorded_log.sessions(USERS, CHANNELS, start, SPAN_MS, seed=11,
                                                                      prefix="hist"), PARTITIONS)
    instants = [start + SPAN_MS * k // 6 for k in range(1, 6)]
    channels = [f"hist-room-{n}" for n in range(CHANNELS)]
    token = stack.token("analyst")
    deadline = time.monotonic() + 300
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        while True:  # until the processor has folded the recorded log and written what it makes due
            events = [e for _, _, e in await logged_positions(stack.bootstrap)]
            answers = {(c, t): await answered_at(http, token, c, t) for c in channels for t in instants}
            expected = {t: expected_at(events, t) for t in instants}
            got = {(c, t): {m["user_id"]: m["status"] for m in a["members"]} for (c, t), a in answers.items()}
            wanted = {(c, t): expected[t].get(c, {}) for c in channels for t in instants}
            if got == wanted or time.monotonic() > deadline:
                break
            await asyncio.sleep(2)

    assert got == wanted
    assert sum(len(members) for members in wanted.values()) > 100  # busy channels, not empty ones
    assert all(a["occupancy"] == len(a["members"]) and a["at"] in instants for a in answers.values())
    assert any(a["position"]["from_snapshot"] is not None for a in answers.values())  # snapshots were used

    channel, at = channels[0], instants[2]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "at", channel, str(at), env=stack.env(), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    printed = orjson.loads(stdout)
    assert printed["members"] == answers[channel, at]["members"] and printed["seq"] == answers[channel, at]["seq"]


async def test_at_must_be_an_instant(stack: Stack, channel: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        for bad in ("yesterday", "2026-12-07T10:00:00", "99999999999999999999"):
            response = await http.get(f"/realtime/channels/{channel}/presence", params={"at": bad},
                                      headers={"authorization": f"Bearer {stack.token('analyst')}"})
            assert response.status_code == 400 and response.json()["error"]["code"] == "request.invalid", bad

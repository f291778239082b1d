"""Point in time: `GET /realtime/channels/{channel}/presence?at=T` and `presence at CHANNEL T` answer a
channel's members as the log says they were at T, from the channel snapshots and the changes after them.

On the recorded log of the history tests (over 100,000 events): the independent oracle (tests/oracle.py)
folds every partition's events in log order, with the partition's leases, and notes each change of what
others see of a user in a channel with the time of its event; at T, each user is in each channel as its
last change there stamped at or before T left it. (The recorded log is written at once, minutes after its events'
times; the sweeper may time a connection out at the wall clock before the rest of its recorded events
are read, and the log then says the user stayed until that timeout.)
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

from bench.recorded_log import Recorded
from schemas.events import Event
from schemas.topics import partition_for
from tests import oracle
from tests.integration.log import logged_positions
from tests.integration.stack import PARTITIONS, ROOT, Stack

CHECKED_CHANNELS = 8  # of the recorded log's 40


Shown = dict[tuple[str, str], list[tuple[int, str | None]]]


def shown_over_time(events: list[Event]) -> Shown:
    """Per (channel, user), every change of what others see of the user in the channel: (the time of
    the event that made it, the user's status there or None when absent), in log order."""
    by_partition: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_partition[partition_for(event.user_id, PARTITIONS)].append(event)
    shown: Shown = defaultdict(list)
    seen: dict[str, dict[str, str]] = defaultdict(dict)  # user -> channel -> status, as last noted
    for logged in by_partition.values():
        users: dict[str, oracle.Expected] = {}
        leases: oracle.Leases = {}
        for event in logged:
            oracle.take(users, event, leases)
            user = users.get(event.user_id)
            now = {}
            if user is not None and user.shown_online():
                now = {channel: oracle.expected_view(user)["status"] for channel in user.channels()}
            before = seen[event.user_id]
            for channel in before.keys() | now.keys():
                if before.get(channel) != now.get(channel):
                    shown[channel, event.user_id].append((event.at, now.get(channel)))
            seen[event.user_id] = now
    return shown


def expected_at(shown: Shown, at: int) -> dict[str, dict[str, str]]:
    """Channel -> {user: status} at `at`: each user in each channel as its last change there stamped at
    or before `at` left it (in log order: a change stamped later that the log holds earlier does not count)."""
    members: dict[str, dict[str, str]] = defaultdict(dict)
    for (channel, user_id), changes in shown.items():
        last = None
        for when, status in changes:
            if when <= at:
                last = status
        if last is not None:
            members[channel][user_id] = last
    return members


async def answered_at(http: httpx.AsyncClient, token: str, channel: str, at: int) -> dict[str, Any]:
    response = await http.get(f"/realtime/channels/{channel}/presence", params={"at": str(at), "limit": "1000"},
                              headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.timeout(500)
async def test_channel_presence_at_past_instants_equals_the_oracle(stack: Stack, recorded: Recorded) -> None:
    assert recorded.events >= 100_000
    instants = [recorded.start + recorded.span_ms * k // 6 for k in range(1, 6)]
    channels = [f"rec-room-{n}" for n in range(CHECKED_CHANNELS)]
    token = stack.token("analyst")
    deadline = time.monotonic() + 400
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        while True:  # until the processor has folded the recorded log and written what it makes due
            shown = shown_over_time([e for _, _, e in await logged_positions(stack.bootstrap)])
            answers = {(c, t): await answered_at(http, token, c, t) for c in channels for t in instants}
            expected = {t: expected_at(shown, t) for t in instants}
            got = {(c, t): {m["user_id"]: m["status"] for m in a["members"]} for (c, t), a in answers.items()}
            wanted = {(c, t): expected[t].get(c, {}) for c in channels for t in instants}
            if got == wanted or time.monotonic() > deadline:
                break
            await asyncio.sleep(5)

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

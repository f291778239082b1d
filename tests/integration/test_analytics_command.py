"""`presence analytics` against the real broker: the presence a few clients make shows in its CSV."""

from __future__ import annotations

import asyncio
import csv
import sys
import time
import uuid
from pathlib import Path

from tests.integration.client import heartbeating
from tests.integration.frames import diff_with, typing_is, user
from tests.integration.stack import ROOT, Stack

SETTLE_S = 30  # the processor writes the changes a moment after the edge has the channel's diff


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


async def analytics(stack: Stack, out: Path, from_ms: int, to_ms: int) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "analytics", "--from", str(from_ms), "--to", str(to_ms),
        "--bucket", "1", "--out", str(out), env=stack.env(), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_analytics_counts_the_presence_clients_made(stack: Stack, connect, tmp_path: Path) -> None:
    lobby, side = f"lobby-{uuid.uuid4().hex[:8]}", f"side-{uuid.uuid4().hex[:8]}"
    ada_id, bob_id = user("ada"), user("bob")
    began = int(time.time() * 1000) - 1000
    ada, bob = await connect(ada_id), await connect(bob_id)
    async with heartbeating(ada, bob):
        await ada.join(lobby)
        await ada.join(side)
        await bob.join(lobby)
        await ada.next(diff_with(lobby, "joins", bob_id))
        await ada.send(type="typing.start", channel=lobby)
        await bob.next(typing_is(lobby, [ada_id]))
        await asyncio.sleep(0.3)
        await ada.send(type="typing.stop", channel=lobby)
        await bob.next(typing_is(lobby, []))
        await bob.send(type="update", status="busy")
        await ada.next(diff_with(lobby, "updates", bob_id, status="busy"))
        await asyncio.sleep(0.5)
        await bob.close()
        await ada.next(diff_with(lobby, "leaves", bob_id))
    ended = int(time.time() * 1000) + 1000

    deadline = time.monotonic() + SETTLE_S
    while True:
        printed = await analytics(stack, tmp_path, began, ended)
        status = {(r["user_id"], r["status"]): int(r["ms"]) for r in rows(tmp_path / "status_time.csv")}
        if (bob_id, "busy") in status or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)

    peaks = {r["channel"]: int(r["peak"]) for r in rows(tmp_path / "peaks.csv")}
    assert peaks[lobby] == 2 and peaks[side] == 1
    assert {(user_id, s) for user_id, s in status if user_id in (ada_id, bob_id)} == {
        (ada_id, "online"), (bob_id, "online"), (bob_id, "busy")}
    assert status[bob_id, "busy"] >= 400  # busy for the 0.5 s before he left
    typing = {(r["channel"], r["user_id"]): r for r in rows(tmp_path / "typing.csv")}
    assert [(channel, user_id) for channel, user_id in typing if user_id in (ada_id, bob_id)] == [(lobby, ada_id)]
    assert typing[lobby, ada_id]["starts"] == "1" and 200 <= int(typing[lobby, ada_id]["typing_ms"]) < 5000
    members = [r for r in rows(tmp_path / "channel_concurrency.csv") if r["channel"] == lobby]
    assert max(int(r["max_members"]) for r in members) == 2
    assert int(members[0]["start_ms"]) == began and int(members[-1]["end_ms"]) == ended
    assert f"{tmp_path / 'peaks.csv'}" in printed
    assert (tmp_path / "concurrency.png").stat().st_size > 0

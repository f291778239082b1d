"""Bounded state: channels that stay empty and users offline beyond the retention are forgotten
(tombstones); a channel joined again starts a new life above the old one."""

from __future__ import annotations

import asyncio
import time

import httpx

from schemas.codec import decode
from schemas.state import UserPresence
from tests.integration.client import heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.log import read_all
from tests.integration.stack import CHANNEL_RETENTION_S, USER_RETENTION_S, Stack, eventually


async def test_an_emptied_channel_is_forgotten_and_its_next_life_continues_above_it(
    stack: Stack, connect, channel: str
) -> None:
    watcher, mover_id = await connect(user("watcher")), user("mover")
    await watcher.send(type="subscribe", channel=channel)
    mover = await connect(mover_id)
    async with heartbeating(watcher, mover):  # the wait outlasts the presence timeout
        await mover.join(channel)
        await watcher.next(diff_with(channel, "joins", mover_id), timeout_s=15)
        await mover.send(type="leave", channel=channel)
        left = await watcher.next(diff_with(channel, "leaves", mover_id), timeout_s=15)

        # After the retention the processor forgets the channel; subscribers start over from seq 0.
        before = len(watcher.frames)
        reset = await watcher.next(lambda f: f["type"] == "presence.snapshot" and f["channel"] == channel,
                                   after=before, timeout_s=CHANNEL_RETENTION_S + 15)
        assert (reset["seq"], reset["members"]) == (0, [])
        # Edges fold the expiry from presence.channel-changes themselves; the channel stage writes its
        # tombstones as it folds the same record, so they may land just after the subscribers' reset.
        for topic in ("presence.channels", "presence-channels-changelog"):

            async def tombstone_last(topic: str = topic) -> bool:
                records = [r for r in await read_all(stack.bootstrap, topic) if r.key == channel.encode()]
                return bool(records) and records[-1].value is None

            await eventually(tombstone_last, timeout_s=10)
        async with httpx.AsyncClient(base_url=stack.base_url,
                                     headers={"Authorization": f"Bearer {stack.token(mover_id)}"}) as http:
            page = (await http.get(f"/realtime/channels/{channel}/presence")).json()
        assert (page["seq"], page["members"]) == (0, [])

        # Joined again: a diff from the empty channel, with a seq above every seq of the old life.
        before = len(watcher.frames)
        await mover.join(channel)
        again = await watcher.next(diff_with(channel, "joins", mover_id), after=before, timeout_s=15)
        assert again["from_seq"] == 1 and again["seq"] > left["seq"]
        assert set(watcher.members(channel)) == {mover_id}

        # A client resuming from the old life gets the new life whole, not diffs on top of the old one.
        late = await connect(user("late"))
        await late.send(type="subscribe", channel=channel, since=left["seq"])
        snapshot = await late.next(lambda f: f["type"] == "presence.snapshot" and f["channel"] == channel)
        assert snapshot["seq"] == again["seq"] and [m["user_id"] for m in snapshot["members"]] == [mover_id]


async def test_a_user_offline_beyond_the_retention_is_forgotten(stack: Stack, connect, channel: str) -> None:
    gone_id = user("gone")
    gone = await connect(gone_id)
    await gone.join(channel)
    await gone.send(type="update", metadata={"name": "Gone"})
    await gone.next(diff_with(channel, "updates", gone_id), timeout_s=15)
    await gone.close()
    url = f"/realtime/users/{gone_id}/presence"
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {stack.token(gone_id)}"}) as http:
        seen = []
        deadline = time.monotonic() + USER_RETENTION_S + 20
        while (answer := await http.get(url)).status_code == 200 and time.monotonic() < deadline:
            seen.append((answer.json()["active"], answer.json()["metadata"]))
            await asyncio.sleep(0.5)
    assert (False, {"name": "Gone"}) in seen  # shown offline with its last state for the retention
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "user.not_found")
    views = [r for r in await read_all(stack.bootstrap, "presence.users") if r.key == gone_id.encode()]
    assert views and views[-1].value is None, "no tombstone last on presence.users"
    # The table keeps a marker with the user's log position for one more retention, then forgets it.
    deadline = time.monotonic() + USER_RETENTION_S + 20
    while True:
        states = [r for r in await read_all(stack.bootstrap, "presence-users-changelog") if r.key == gone_id.encode()]
        if states and states[-1].value is None or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert states and states[-1].value is None, "no tombstone last on presence-users-changelog"
    markers = [decode(r.value, UserPresence) for r in states if r.value is not None]
    assert markers and markers[-1].forgotten and markers[-1].metadata == {}

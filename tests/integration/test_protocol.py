"""WebSocket protocol features: devices and metadata at connect, resume with `since`, batched large channels.

Every client that must stay present heartbeats: the stack's presence timeout is 3 s, which a loaded
2-core machine can spend between two steps of a test."""

from __future__ import annotations

import json
import uuid

from tests.integration.client import heartbeating
from tests.integration.frames import diff_with
from tests.integration.stack import BATCH_ABOVE_MEMBERS


async def test_device_and_metadata_given_at_connect_are_shown(connect, channel: str) -> None:
    user_id = f"dev-{uuid.uuid4().hex[:6]}"
    phone = await connect(user_id, device="ios", metadata=json.dumps({"name": "Grace"}))
    laptop = await connect(user_id, device="web")
    async with heartbeating(phone, laptop):
        await phone.join(channel)
        await laptop.join(channel)
        update = await phone.next(diff_with(channel, "updates", user_id, connections=2))
    member = next(m for m in update["updates"] if m["user_id"] == user_id)
    assert member["devices"] == ["ios", "web"] and member["metadata"] == {"name": "Grace"}


async def test_resume_with_since_sends_only_missed_diffs(connect, channel: str) -> None:
    observer_id, mover_id = f"obs-{uuid.uuid4().hex[:6]}", f"mover-{uuid.uuid4().hex[:6]}"
    observer = await connect(observer_id)
    await observer.send(type="subscribe", channel=channel)
    mover = await connect(mover_id)
    later = await connect(f"late-{uuid.uuid4().hex[:6]}")
    async with heartbeating(observer, mover, later):
        await mover.join(channel)
        seen = await observer.next(diff_with(channel, "joins", mover_id))
        await observer.close()
        await mover.send(type="update", status="away")
        await later.join(channel)
        latest = await later.next(diff_with(channel, "updates", mover_id, status="away"))
        back = await connect(observer_id)
        await back.send(type="subscribe", channel=channel, since=seen["seq"], ref="r")
        resumed = await back.next(lambda f: f["type"] == "presence.resumed")
        assert (resumed["since"], resumed["ref"]) == (seen["seq"], "r")
        missed = await back.next(lambda f: f["type"] == "presence.diff" and f["seq"] == latest["seq"])
        assert missed["updates"][0]["status"] == "away"
        before = len(back.frames)
        await back.send(type="subscribe", channel=channel, since=10_000)  # not a seq the edge holds
        await back.next(lambda f: f["type"] == "presence.snapshot", after=before)


async def test_large_channels_get_batched_frames(connect, channel: str) -> None:
    observer = await connect(f"obs-{uuid.uuid4().hex[:6]}")
    await observer.send(type="subscribe", channel=channel)
    members = [await connect(f"crowd{i}-{uuid.uuid4().hex[:4]}") for i in range(BATCH_ABOVE_MEMBERS + 3)]
    async with heartbeating(observer, *members):
        for m in members:
            await m.join(channel)
        batch = await observer.next(lambda f: f["type"] == "presence.batch", timeout_s=15)
        assert batch["from_seq"] <= batch["seq"] and batch["occupancy"] > BATCH_ABOVE_MEMBERS
        await observer.next(lambda f: f["type"] in ("presence.diff", "presence.batch")
                            and f["occupancy"] == len(members), timeout_s=15)
        assert len(observer.members(channel)) == len(members)


async def test_an_error_frame_echoes_the_ref_of_the_frame_it_answers(connect, channel: str) -> None:
    client = await connect(f"ref-{uuid.uuid4().hex[:6]}")
    async with heartbeating(client):
        before = len(client.frames)
        await client.send(type="update", status="sleeping", ref=7)  # refused while parsed
        bad_update = await client.error(after=before)
        before = len(client.frames)
        await client.send(type="leave", channel=channel, ref="l1")  # refused while handled
        not_joined = await client.error(after=before)
        before = len(client.frames)
        await client.send_raw('{"type":"update","status":"away","ref":8')  # malformed JSON: no ref to read
        malformed = await client.error(after=before)
        before = len(client.frames)
        await client.send(type="update", status="away", ref=True)  # a bool is no ref
        bool_ref = await client.error(after=before)
    assert (bad_update["code"], bad_update["ref"]) == ("presence.unknown_status", 7)
    assert (not_joined["code"], not_joined["ref"]) == ("channel.not_joined", "l1")
    assert malformed["code"] == "request.malformed_json" and "ref" not in malformed
    assert bool_ref["code"] == "request.invalid" and "ref" not in bool_ref

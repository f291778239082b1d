"""Custom states from the policy file, status text, invisibility, expiry, timeouts and auto-away."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from tests.integration.client import heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.stack import Stack, eventually


async def pair(connect, channel: str):  # type: ignore[no-untyped-def]
    watcher_id, subject_id = user("watcher"), user("subject")
    watcher, subject = await connect(watcher_id), await connect(subject_id, device="ios")
    await watcher.join(channel)
    await subject.join(channel)
    await watcher.next(diff_with(channel, "joins", subject_id))
    return watcher, subject, subject_id


async def beat(*clients, seconds: float) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.5)):
        for client in clients:
            await client.send(type="heartbeat")
        await asyncio.sleep(0.5)


async def test_custom_state_with_metadata_is_broadcast_and_expires(connect, channel: str) -> None:
    watcher, subject, subject_id = await pair(connect, channel)
    await subject.send(type="update", status="in-a-meeting", status_metadata={"room": "4.12"},
                       status_text="Planning", status_emoji="📅")
    update = await watcher.next(diff_with(channel, "updates", subject_id, status="in-a-meeting"))
    shown = next(m for m in update["updates"] if m["user_id"] == subject_id)
    assert shown["status_metadata"] == {"room": "4.12"}
    assert (shown["status_text"], shown["status_emoji"]) == ("Planning", "📅")
    after = len(watcher.frames)
    await watcher.next(diff_with(channel, "updates", subject_id, status="online", status_text=None),
                       after=after, timeout_s=6)


async def test_invalid_state_metadata_and_unknown_states_are_rejected(connect) -> None:
    client = await connect(user("bad-state"))
    for frame, code in [
        ({"status": "in-a-meeting", "status_metadata": {"room": 4}}, "presence.invalid_status_metadata"),
        ({"status": "in-a-meeting"}, "presence.invalid_status_metadata"),
        ({"status": "away", "status_metadata": {"x": 1}}, "presence.invalid_status_metadata"),
        ({"status": "napping"}, "presence.unknown_status"),
        ({"timeout_s": 3600}, "presence.timeout_out_of_bounds"),
        ({"status_text": "x" * 101}, "request.invalid"),
    ]:
        before = len(client.frames)
        await client.send(type="update", **frame)
        assert (await client.error(after=before))["code"] == code, frame


async def test_invisible_users_appear_offline_on_push_and_rest(stack: Stack, connect, channel: str) -> None:
    watcher, subject, subject_id = await pair(connect, channel)
    await subject.send(type="update", status="invisible")
    await watcher.next(diff_with(channel, "leaves", subject_id))
    async with httpx.AsyncClient(base_url=stack.base_url, headers={
        "Authorization": f"Bearer {stack.service_key()}"  # the subject left every channel: a service may read it
    }) as http:
        members = (await http.get(f"/realtime/channels/{channel}/presence")).json()["members"]
        assert subject_id not in [m["user_id"] for m in members]

        async def user_shown() -> tuple[str, bool, list[str]]:
            shown = (await http.get(f"/realtime/users/{subject_id}/presence")).json()
            return shown["status"], shown["active"], shown["devices"]

        # User views travel on their own topic, so they may land just after the channel's.
        await eventually(lambda: _is(user_shown(), ("offline", False, [])))
        await subject.send(type="update", status="online")
        await watcher.next(diff_with(channel, "joins", subject_id, status="online"))
        await eventually(lambda: _is(user_shown(), ("online", True, ["ios"])))


async def _is(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return await value == expected


async def test_channel_policy_timeout_applies_to_its_members(connect) -> None:
    channel = f"game-{uuid.uuid4().hex[:6]}"  # the policy gives game-* a 1.5 s timeout
    watcher, subject, subject_id = await pair(connect, channel)
    quiet_since = time.monotonic()
    async with heartbeating(watcher):  # the watcher is in the channel too: silent, it is closed after 1.5 s
        await watcher.next(diff_with(channel, "leaves", subject_id, reason="timeout"), timeout_s=6)
    assert time.monotonic() - quiet_since <= 1.5 + 2


async def test_per_user_timeout_requested_in_an_update(stack: Stack, connect, channel: str) -> None:
    watcher, subject, subject_id = await pair(connect, channel)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.post("/realtime/presence/update", json={"timeout_s": 1},
                                 headers={"Authorization": f"Bearer {stack.token(subject_id)}"})
    assert answer.status_code == 200, answer.text
    quiet_since = time.monotonic()
    await watcher.next(diff_with(channel, "leaves", subject_id, reason="timeout"), timeout_s=6)
    assert time.monotonic() - quiet_since <= 1 + 2


async def test_auto_away_after_idle_and_back_on_activity(connect, channel: str) -> None:
    watcher, subject, subject_id = await pair(connect, channel)
    beating = asyncio.create_task(beat(watcher, subject, seconds=12))
    try:
        await watcher.next(diff_with(channel, "updates", subject_id, status="away"), timeout_s=10)
        after = len(watcher.frames)
        await subject.send(type="typing.start", channel=channel)
        await watcher.next(diff_with(channel, "updates", subject_id, status="online"), after=after, timeout_s=6)
    finally:
        beating.cancel()


async def test_user_presence_keeps_last_seen_after_disconnect(stack: Stack, connect, channel: str) -> None:
    watcher, subject, subject_id = await pair(connect, channel)
    await subject.send(type="update", metadata={"name": "Ada", "avatar": "https://example.com/a.png"})
    await watcher.next(diff_with(channel, "updates", subject_id))
    closed_at = int(time.time() * 1000)
    await subject.close()
    await watcher.next(diff_with(channel, "leaves", subject_id, reason="leave"))
    async with httpx.AsyncClient(base_url=stack.base_url, headers={
        "Authorization": f"Bearer {stack.service_key()}"  # the subject left every channel: a service may read it
    }) as http:

        async def offline_view() -> dict | None:  # type: ignore[type-arg]
            shown = (await http.get(f"/realtime/users/{subject_id}/presence")).json()
            return shown if shown["status"] == "offline" else None

        shown = await eventually(offline_view)
        missing = await http.get("/realtime/users/nobody-ever/presence")
    assert shown["status"] == "offline" and shown["active"] is False
    assert abs(shown["last_seen"] - closed_at) < 2000 and shown["last_seen_iso"].endswith("Z")
    assert shown["metadata"] == {"name": "Ada", "avatar": "https://example.com/a.png"}
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "user.not_found")

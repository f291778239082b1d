"""REST reads and writes: pagination, filters, idempotent updates, read-your-writes."""

from __future__ import annotations

import uuid

import httpx

from tests.integration.frames import diff_with
from tests.integration.stack import BATCH_ABOVE_MEMBERS, Stack


async def test_channel_presence_pages_filters_and_counts(stack: Stack, connect, channel: str) -> None:
    users = sorted(f"page{i}-{uuid.uuid4().hex[:4]}" for i in range(BATCH_ABOVE_MEMBERS))  # diffs, not batches
    clients = [await connect(u) for u in users]
    for c in clients:
        await c.join(channel)
    await clients[0].send(type="update", status="busy")
    await clients[-1].next(diff_with(channel, "updates", users[0], status="busy"), timeout_s=15)
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {stack.token(users[0])}"}) as http:
        url = f"/realtime/channels/{channel}/presence"
        seen, cursor = [], None
        while True:
            page = (await http.get(url, params={"limit": 3, **({"cursor": cursor} if cursor else {})})).json()
            seen += [m["user_id"] for m in page["members"]]
            assert len(page["members"]) <= 3
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == users
        count = (await http.get(url, params={"count_only": "true"})).json()
        assert count["occupancy"] == len(users) and "members" not in count
        busy = (await http.get(url, params={"status": "busy", "include_metadata": "false"})).json()
        assert [m["user_id"] for m in busy["members"]] == [users[0]] and "metadata" not in busy["members"][0]
        bad = await http.get(url, params={"limit": 0})
        assert bad.json()["error"]["code"] == "request.invalid"


async def test_idempotency_key_gives_one_event_and_wait_returns_the_applied_view(
    stack: Stack, connect, channel: str
) -> None:
    user_id = f"idem-{uuid.uuid4().hex[:6]}"
    client = await connect(user_id)
    await client.join(channel)
    headers = {"Authorization": f"Bearer {stack.token(user_id)}", "Idempotency-Key": "req-1"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers=headers) as http:
        first = (await http.post("/realtime/presence/update", json={"status": "dnd"}, params={"wait": "true"})).json()
        second = (await http.post("/realtime/presence/update", json={"status": "dnd"})).json()
    assert first["event_id"] == second["event_id"]
    assert first["presence"]["status"] == "dnd"
    await client.next(diff_with(channel, "updates", user_id, status="dnd"))
    updates = [f for f in client.frames if f["type"] == "presence.diff"
               and any(m["user_id"] == user_id and m["status"] == "dnd" for m in f["updates"])]
    assert len(updates) == 1

"""Restarting the processor loses no presence state: the new worker recovers it from the changelog.

The worker is stopped as an orchestrator stops it (SIGTERM, leaving its group). kill -9 failovers
belong to the reliability suite (tests/chaos/test_processor_kills.py), not to this test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx

from tests.integration.client import heartbeating
from tests.integration.frames import diff_with
from tests.integration.stack import Stack, eventually


async def patient(stack: Stack, user_id: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.post("/realtime/presence/update", json={"timeout_s": 30}, params={"wait": "true"},
                                 headers={"Authorization": f"Bearer {stack.token(user_id)}"})
    assert answer.status_code == 200, answer.text


async def test_processor_restart_loses_no_presence_state(stack: Stack, connect, channel: str) -> None:
    watcher, user_id = await connect(f"watcher-{uuid.uuid4().hex[:6]}"), f"multi-{uuid.uuid4().hex[:6]}"
    phone, laptop = await connect(user_id), await connect(user_id)
    # A worker starting up takes both cores for seconds; a 3 s timeout would then measure the machine,
    # so these users ask for a longer one (the per-user timeout within the server's bounds).
    for user in (watcher.user_id, user_id):
        await patient(stack, user)
    async with heartbeating(watcher, phone, laptop):
        await watcher.join(channel)
        await phone.join(channel)
        await laptop.join(channel)
        await watcher.next(diff_with(channel, "updates", user_id, connections=2))

        stack.stop_worker(stack.workers[-1])
        log = stack.logs / f"worker-{len(stack.workers)}.log"  # appended to across runs: read from here on
        logged_before = log.stat().st_size if log.exists() else 0
        stack.start_worker(PRESENCE_LOG_FORMAT="json", PRESENCE_LOG_LEVEL="info")  # JSON, as production would

        # Heartbeats written while no worker ran must not turn into timeouts once one catches up.
        after = len(watcher.frames)
        await phone.close()
        await watcher.next(diff_with(channel, "updates", user_id, connections=1), after=after, timeout_s=90)
        assert watcher.members(channel)[user_id]["status"] == "online"
        await laptop.close()
        await watcher.next(diff_with(channel, "leaves", user_id, reason="leave"), after=after, timeout_s=30)
        timeouts = [f for f in watcher.frames[after:] if f["type"] == "presence.diff"
                    and any(d["reason"] == "timeout" for d in f["leaves"])]
        assert timeouts == []
    # Every line the replacement wrote, its start and its folding, is one JSON object.
    records = [json.loads(line) for line in log.read_bytes()[logged_before:].decode().splitlines()]
    assert records and all({"timestamp", "level", "logger", "message"} <= record.keys() for record in records)


async def processing(http: httpx.AsyncClient, stack: Stack) -> None:
    """Returns once the (new) worker applies updates again, without retrying any write.

    Retrying an update with its Idempotency-Key while the worker starts writes a second copy of the
    event with a later `at`; one full-suite run then ended with the live table holding the later
    copy for one user and the replayed log the earlier one (an open finding, see the closing note
    of issue 5), so this test leaves retries out of its path.
    """
    probe = f"probe-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": f"Bearer {stack.token(probe)}"}
    answer = await http.post("/realtime/presence/update", json={"metadata": {"probe": True}}, headers=headers)
    assert answer.status_code == 200, answer.text

    async def applied() -> bool:
        return (await http.get(f"/realtime/users/{probe}/presence", headers=headers)).status_code == 200

    await eventually(applied, timeout_s=90, interval_s=0.5)


async def test_restart_recovers_state_written_in_multi_record_batches(stack: Stack) -> None:
    """Updates applied together leave changelog batches of several records; recovery must read them all."""
    users = [f"batch-{uuid.uuid4().hex[:6]}-{n}" for n in range(60)]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        async def update(user_id: str, body: dict[str, object]) -> dict[str, Any]:
            """The user's view once the update is applied; retried (same key) while the worker recovers."""
            headers = {"Authorization": f"Bearer {stack.token(user_id)}", "Idempotency-Key": str(body)}
            async with asyncio.timeout(90):
                while True:
                    answer = await http.post("/realtime/presence/update", json=body, params={"wait": "true"},
                                             headers=headers)
                    if answer.status_code != 503:
                        assert answer.status_code == 200, answer.text
                        return answer.json()["presence"]

        await asyncio.gather(*(update(u, {"metadata": {"name": u}}) for u in users))
        stack.stop_worker(stack.workers[-1])
        stack.start_worker()
        await processing(http, stack)
        views = await asyncio.gather(*(update(u, {"status": "busy"}) for u in users))
    assert {view["user_id"]: view["metadata"] for view in views} == {u: {"name": u} for u in users}

"""End to end through the real broker, the processor and the edge: what subscribers see."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time

import httpx

from services.broker import free_port
from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.stack import GRACE_S, ROOT, TIMEOUT_S, Stack, eventually, start_edge, stop_edge


async def test_two_users_see_each_other_online(connect, channel: str) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    alice = await connect(alice_id)
    await alice.join(channel)
    await alice.next(diff_with(channel, "joins", alice_id, status="online"))
    bob = await connect(bob_id)
    snapshot = await bob.join(channel)
    assert [m["user_id"] for m in snapshot["members"]] == [alice_id]
    await alice.next(diff_with(channel, "joins", bob_id, status="online"))
    await bob.next(diff_with(channel, "joins", bob_id))
    assert set(alice.members(channel)) == set(bob.members(channel)) == {alice_id, bob_id}


async def test_clean_close_is_offline_with_reason_leave_and_last_seen(connect, channel: str) -> None:
    watcher, leaver_id = await connect(user("watcher")), user("leaver")
    await watcher.join(channel)
    leaver = await connect(leaver_id)
    await leaver.join(channel)
    await watcher.next(diff_with(channel, "joins", leaver_id))
    closed_at = int(time.time() * 1000)
    await leaver.close()
    left = await watcher.next(diff_with(channel, "leaves", leaver_id, reason="leave"))
    departure = next(d for d in left["leaves"] if d["user_id"] == leaver_id)
    assert abs(departure["last_seen"] - closed_at) < 2000
    assert departure["last_seen_iso"].endswith("Z")
    assert leaver_id not in watcher.members(channel)


async def test_silent_connection_times_out_within_timeout_plus_2s(connect, channel: str) -> None:
    watcher, silent_id = await connect(user("watcher")), user("silent")
    await watcher.join(channel)
    silent = await connect(silent_id)
    await silent.join(channel)  # the last frame it sends: the socket stays open but quiet
    last_frame = time.monotonic()
    async with heartbeating(watcher):  # a silent watcher would be closed at its own timeout, before this one
        await watcher.next(diff_with(channel, "joins", silent_id))
        await watcher.next(diff_with(channel, "leaves", silent_id, reason="timeout"), timeout_s=TIMEOUT_S + 5)
    assert time.monotonic() - last_frame <= TIMEOUT_S + 2


async def test_heartbeats_keep_a_connection_online(connect, channel: str) -> None:
    watcher, beating_id = await connect(user("watcher")), user("beating")
    await watcher.join(channel)
    beating = await connect(beating_id)
    await beating.join(channel)
    await watcher.next(diff_with(channel, "joins", beating_id))
    async with heartbeating(watcher):
        for _ in range(int(TIMEOUT_S * 2 / 0.5)):
            await beating.send(type="heartbeat")
            await asyncio.sleep(0.5)
    assert beating_id in watcher.members(channel)
    assert not [f for f in watcher.frames if f["type"] == "error"]  # both sockets still served


async def test_killed_client_process_times_out(stack: Stack, connect, channel: str) -> None:
    watcher, victim_id = await connect(user("watcher")), user("victim")
    await watcher.join(channel)
    script = (
        "import asyncio, sys\n"
        "from tests.integration.client import Client\n"
        "async def main():\n"
        "    c = Client(sys.argv[1], sys.argv[2]); await c.connect(); await c.join(sys.argv[3])\n"
        "    print('joined', flush=True)\n"
        "    while True:\n"
        "        await c.send(type='heartbeat'); await asyncio.sleep(0.5)\n"
        "asyncio.run(main())\n"
    )
    victim = subprocess.Popen(
        [sys.executable, "-c", script, stack.ws_url, stack.token(victim_id), channel],
        cwd=ROOT, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        async with heartbeating(watcher):
            await watcher.next(diff_with(channel, "joins", victim_id), timeout_s=20)
            victim.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            victim.wait(timeout=5)
            await watcher.next(diff_with(channel, "leaves", victim_id, reason="timeout"), timeout_s=TIMEOUT_S + 5)
        # An abrupt drop keeps the user for the reconnect grace, never beyond the presence timeout.
        assert GRACE_S - 0.5 <= time.monotonic() - killed <= TIMEOUT_S + 2
    finally:
        victim.kill()
        victim.wait()


async def test_user_with_two_connections_stays_online_until_the_last_closes(connect, channel: str) -> None:
    watcher, phone_user = await connect(user("watcher")), user("multi")
    await watcher.join(channel)
    phone, laptop = await connect(phone_user), await connect(phone_user)
    await phone.join(channel)
    await laptop.join(channel)
    joined = await watcher.next(diff_with(channel, "updates", phone_user, connections=2))
    await phone.close()
    after = len(watcher.frames)
    await watcher.next(diff_with(channel, "updates", phone_user, connections=1), after=after)
    assert watcher.members(channel)[phone_user]["status"] == "online"
    await laptop.close()
    await watcher.next(diff_with(channel, "leaves", phone_user, reason="leave"), after=after)
    assert joined["seq"] < watcher.views[channel]["seq"]


async def test_rest_read_equals_what_subscribers_saw(stack: Stack, connect, channel: str) -> None:
    users = [user(f"member{i}") for i in range(3)]
    clients = [await connect(u) for u in users]
    for c in clients:
        await c.join(channel)
    await clients[0].send(type="update", status="away")
    watcher = clients[-1]
    await watcher.next(diff_with(channel, "updates", users[0], status="away"))
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get(
            f"/realtime/channels/{channel}/presence", headers={"Authorization": f"Bearer {stack.token(users[1])}"}
        )
    assert answer.status_code == 200
    body = answer.json()
    assert body["seq"] == watcher.views[channel]["seq"]
    assert body["occupancy"] == 3
    assert {m["user_id"]: m for m in body["members"]} == watcher.members(channel)


async def test_post_update_is_acknowledged_with_event_id_and_broadcast(stack: Stack, connect, channel: str) -> None:
    poster_id = user("poster")
    poster = await connect(poster_id)
    await poster.join(channel)
    await poster.next(diff_with(channel, "joins", poster_id))
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.post(
            "/realtime/presence/update", json={"status": "busy", "metadata": {"name": "Poster"}},
            headers={"Authorization": f"Bearer {stack.token(poster_id)}"},
        )
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["event_id"]) == 32
    update = await poster.next(diff_with(channel, "updates", poster_id, status="busy"))
    member = next(m for m in update["updates"] if m["user_id"] == poster_id)
    assert member["metadata"] == {"name": "Poster"}


async def test_reconnect_within_grace_shows_no_offline(connect, channel: str) -> None:
    watcher, flaky_id = await connect(user("watcher")), user("flaky")
    await watcher.join(channel)
    first = await connect(flaky_id)
    await first.join(channel)
    await watcher.next(diff_with(channel, "joins", flaky_id))
    after = len(watcher.frames)
    await first.abort()
    second = await connect(flaky_id)
    await second.join(channel)
    async with heartbeating(watcher):
        for _ in range(int((GRACE_S + 1.5) / 0.5)):
            await second.send(type="heartbeat")
            await asyncio.sleep(0.5)
    leaves = [f for f in watcher.frames[after:] if f["type"] == "presence.diff"
              and any(d["user_id"] == flaky_id for d in f["leaves"])]
    assert leaves == []
    assert watcher.members(channel)[flaky_id]["connections"] == 1


async def test_reconnect_to_another_edge_within_grace_shows_no_offline(stack: Stack, connect, channel: str) -> None:
    # Presence is per user: the edge that sees the drop keeps the connection for the grace, and any new
    # connection of the same user (the token's user id; no resume token) keeps the user online meanwhile,
    # whichever edge it reaches.
    port = free_port()
    other = await start_edge(stack, f"edge-other-{channel}", port, f"edge-other-{channel}")
    try:
        flaky_id = user("flaky")
        observer = await connect(user("dashboard"))  # subscribed, not present, on the first edge
        await observer.send(type="subscribe", channel=channel)
        watcher = await connect(user("watcher"))  # present
        await watcher.join(channel)
        far = Client(f"ws://127.0.0.1:{port}/realtime/ws", stack.token(user("far")))  # on the other edge
        await far.connect()
        await far.send(type="subscribe", channel=channel)
        first = await connect(flaky_id, device="ios")
        await first.join(channel)
        for client in (observer, watcher, far):
            await client.next(diff_with(channel, "joins", flaky_id, connections=1, devices=["ios"]))
        afters = [len(c.frames) for c in (observer, watcher, far)]
        shown: list[tuple[str, tuple[object, ...]]] = []
        polled: list[float] = []

        async def poll_rest() -> None:  # what REST shows, on both edges, from before the drop to the end
            headers = {"Authorization": f"Bearer {stack.token(flaky_id)}"}
            async with httpx.AsyncClient(headers=headers, timeout=2) as http:
                while True:
                    for base in (stack.base_url, f"http://127.0.0.1:{port}"):
                        me = (await http.get(f"{base}/realtime/users/{flaky_id}/presence")).json()
                        members = (await http.get(f"{base}/realtime/channels/{channel}/presence")).json()["members"]
                        shown.append(("user", (me["active"], me["status"], me["connections"] >= 1)))
                        shown.append(("channel", tuple(m["status"] for m in members if m["user_id"] == flaky_id)))
                    polled.append(time.monotonic())
                    await asyncio.sleep(0.2)

        rest = asyncio.create_task(poll_rest())
        await eventually(lambda: polled)
        await first.abort()  # a network change: the client comes back through another edge
        dropped = time.monotonic()
        second = Client(f"ws://127.0.0.1:{port}/realtime/ws", stack.token(flaky_id), device="ios")
        await second.connect()
        await second.join(channel)
        async with heartbeating(observer, watcher, far, second):
            await asyncio.sleep(GRACE_S + 1.5)  # the first connection's grace runs out meanwhile
            for client, after in zip((observer, watcher, far), afters, strict=True):  # it did: the count fell to 1
                await client.next(diff_with(channel, "updates", flaky_id, connections=1), after=after)
            expired = time.monotonic()
            rest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await rest
        for client, after in zip((observer, watcher, far), afters, strict=True):
            diffs = [f for f in client.frames[after:] if f["type"] == "presence.diff"]
            seen = [(key, m) for f in diffs for key in ("joins", "leaves", "updates") for m in f[key]
                    if m["user_id"] == flaky_id]
            assert [key for key, _ in seen] == ["updates"] * len(seen), seen  # no leave, no join
            # Only the count changes: the second connection counted, then the first's grace ran out.
            assert [(m["status"], m["connections"], m["devices"]) for _, m in seen] == [
                ("online", 2, ["ios", "ios"]), ("online", 1, ["ios"])]
            assert client.members(channel)[flaky_id]["connections"] == 1
        # REST was asked on both edges at least every GRACE_S / 2 from before the drop until the grace had run out.
        assert polled[0] < dropped and polled[-1] > expired - GRACE_S / 2
        assert max(b - a for a, b in zip(polled, polled[1:], strict=False)) < GRACE_S / 2
        assert set(shown) == {("user", (True, "online", True)), ("channel", ("online",))}
        await second.close()
        await far.close()
    finally:
        stop_edge(other)


async def test_observer_sees_presence_without_being_present(connect, channel: str) -> None:
    observer_id, member_id = user("dashboard"), user("member")
    observer = await connect(observer_id)
    before = len(observer.frames)
    await observer.send(type="subscribe", channel=channel, ref="s1")
    snapshot = await observer.next(lambda f: f["type"] == "presence.snapshot", after=before)
    assert snapshot["ref"] == "s1"
    member = await connect(member_id)
    await member.join(channel)
    await observer.next(diff_with(channel, "joins", member_id))
    assert set(observer.members(channel)) == {member_id}
    await observer.send(type="unsubscribe", channel=channel, ref="u1")
    await observer.next(lambda f: f["type"] == "ack" and f["ref"] == "u1")
    before = len(observer.frames)
    await observer.send(type="unsubscribe", channel=channel)
    assert (await observer.error(after=before))["code"] == "channel.not_subscribed"

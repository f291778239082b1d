"""An edge killed with -9 and started again under the same id closes its previous incarnation's
connections at once (services/previous_incarnation.py), instead of leaving them to the timeout.

The edge under test is a second edge process of its own (the session's edge stays up): the observer
watches through the session's edge, so what it sees does not depend on the edge being restarted.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid

import httpx

from schemas.events import ConnectionClosed
from services.broker import free_port
from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.log import logged_events
from tests.integration.stack import Stack, eventually, start_edge, stop_edge

USER_TIMEOUT_S = 30  # within the policy's per-user bounds, and far beyond what the test waits


async def test_a_restarted_edge_closes_what_its_killed_incarnation_left_open(
    stack: Stack, connect, channel: str
) -> None:
    edge_id, port = f"edge-restart-{uuid.uuid4().hex[:6]}", free_port()
    ws_url = f"ws://127.0.0.1:{port}/realtime/ws"
    crashed_user, newcomer_user = user("crashed"), user("newcomer")
    observer = await connect(user("observer"))
    await observer.send(type="subscribe", channel=channel)
    await observer.next(lambda f: f["type"] == "presence.snapshot" and f["channel"] == channel)

    first = await start_edge(stack, edge_id, port, f"{edge_id}-1")
    second = None
    crashed = Client(ws_url, stack.token(crashed_user))
    newcomer = Client(ws_url, stack.token(newcomer_user))
    try:
        welcome = await crashed.connect()
        assert welcome["edge_id"] == edge_id
        async with heartbeating(crashed):
            await crashed.join(channel)
            async with httpx.AsyncClient(base_url=stack.base_url) as http:
                patient = await http.post("/realtime/presence/update", json={"timeout_s": USER_TIMEOUT_S},
                                          params={"wait": "true"},
                                          headers={"Authorization": f"Bearer {stack.token(crashed_user)}"})
            assert patient.status_code == 200, patient.text
            await observer.next(diff_with(channel, "joins", crashed_user))

            after = len(observer.frames)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            killed_at = time.monotonic()

        second = await start_edge(stack, edge_id, port, f"{edge_id}-2")
        ready_at = time.monotonic()
        await newcomer.connect()
        async with heartbeating(newcomer):
            await newcomer.join(channel)
            leave = await observer.next(diff_with(channel, "leaves", crashed_user), after=after, timeout_s=20)
            offline_at = time.monotonic()
            await observer.next(diff_with(channel, "joins", newcomer_user), after=after)
            print(f"\n{crashed_user} offline {offline_at - killed_at:.2f} s after the kill, "
                  f"{offline_at - ready_at:.2f} s after the new incarnation was ready (timeout {USER_TIMEOUT_S} s)")

            # Closed, not timed out: the sweeper's timeout would say `timeout`, and only after 30 s.
            assert [d["reason"] for d in leave["leaves"] if d["user_id"] == crashed_user] == ["leave"]
            assert offline_at - ready_at < 10
            async with httpx.AsyncClient(base_url=stack.base_url,
                                         headers={"Authorization": f"Bearer {stack.token(crashed_user)}"}) as http:
                members = (await http.get(f"/realtime/channels/{channel}/presence")).json()["members"]
                assert newcomer_user in [m["user_id"] for m in members]
                assert crashed_user not in [m["user_id"] for m in members]

                async def shown_offline() -> bool:  # presence.users is read apart from presence.channels
                    shown = (await http.get(f"/realtime/users/{crashed_user}/presence")).json()
                    return shown["status"] == "offline" and not shown["active"]

                await eventually(shown_offline, timeout_s=5)

            # The new incarnation closed exactly the killed one's connection, not its own newcomer's.
            closes = [e for e in await logged_events(stack.bootstrap)
                      if isinstance(e, ConnectionClosed) and e.edge_id == edge_id]
            assert [(e.user_id, e.connection_id) for e in closes] == [(crashed_user, welcome["connection_id"])]
            await asyncio.sleep(1)
            assert newcomer._ws.state.name == "OPEN"
            assert [f for f in newcomer.frames if f["type"] == "error"] == []
            assert newcomer_user in observer.members(channel)
        await newcomer.close()
    finally:
        for edge in (first, second):
            if edge is not None:
                stop_edge(edge)

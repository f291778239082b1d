"""The Python SDK (clients/python) against the real stack: presence seen both ways, status, typing and
its expiry, a cut network healed by a reconnect that resumes, forced offline, token refresh, watches
and the bulk query; and the SDK README's examples (a user's, a backend's) run as written."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from presence_client import (
    Backoff,
    ChannelChange,
    Client,
    ForcedOfflineError,
    MemberUpdated,
    Resumed,
    Resynced,
    connect,
)

from services.broker import free_port
from tests.integration.client import Client as RawClient
from tests.integration.client import heartbeating
from tests.integration.stack import (
    BATCH_ABOVE_MEMBERS,
    ROOT,
    TIMEOUT_S,
    Stack,
    eventually,
    start_edge,
    stop_edge,
)

SDK_README = ROOT / "clients" / "python" / "README.md"
TOUR = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
QUICK = Backoff(base_s=0.05, cap_s=0.5)


def user(name: str) -> str:
    return f"{name}-{os.urandom(3).hex()}"


@contextlib.asynccontextmanager
async def sdk(stack: Stack, user_id: str, url: str | None = None, **options: Any) -> AsyncIterator[Client]:
    async with connect(url or stack.base_url, token=stack.token(user_id), backoff=QUICK, **options) as client:
        yield client


async def rest_members(stack: Stack, channel: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get(f"/realtime/channels/{channel}/presence",
                                headers={"Authorization": f"Bearer {stack.token('reader')}"})
        return {m["user_id"]: m["status"] for m in answer.json()["members"]}


async def test_two_users_see_each_other_status_and_typing(stack: Stack, channel: str) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    async with sdk(stack, alice_id, device="web") as alice, sdk(stack, bob_id) as bob:
        alice_view = await alice.join(channel)
        bob_view = await bob.join(channel)
        await eventually(lambda: {alice_id, bob_id} <= alice_view.members.keys() <= bob_view.members.keys())
        assert alice_view.members[alice_id].devices == ("web",) and bob_view.occupancy == 2

        changes: list[ChannelChange] = []
        bob_view.on_change(changes.append)
        await alice.set_status("busy", text="In a call", emoji="📞")
        await eventually(lambda: bob_view.members[alice_id].status == "busy")
        assert bob_view.members[alice_id].status_text == "In a call"
        update = next(c for c in changes if isinstance(c, MemberUpdated))
        assert update.member.user_id == alice_id and update.previous is not None
        assert update.previous.status == "online"

        await alice_view.typing(timeout_s=1)
        await eventually(lambda: alice_id in bob_view.typing_users)
        started = time.monotonic()
        await eventually(lambda: alice_id not in bob_view.typing_users, timeout_s=5)  # it expires by itself
        assert time.monotonic() - started < 3

        await alice_view.typing()
        await eventually(lambda: alice_id in bob_view.typing_users)
        await alice_view.stop_typing()
        await eventually(lambda: alice_id not in bob_view.typing_users)

        await alice_view.leave()
        await eventually(lambda: alice_id not in bob_view.members)


async def test_a_subscriber_observes_without_being_present(stack: Stack, channel: str) -> None:
    alice_id, observer_id = user("alice"), user("observer")
    async with sdk(stack, alice_id) as alice, sdk(stack, observer_id) as observer:
        watched = await observer.subscribe(channel)
        await alice.join(channel)
        await eventually(lambda: alice_id in watched.members)
        assert observer_id not in watched.members and watched.occupancy == 1 and not watched.joined
        await watched.leave()  # an unsubscribe, answered by its ack
        await alice.set_status("busy")
        await eventually(lambda: _status_is(stack, channel, alice_id, "busy"))
        assert watched.members[alice_id].status == "online", "a left view stops changing"


async def test_a_large_channels_batches_keep_the_view_equal_to_the_servers(stack: Stack, channel: str) -> None:
    """Above BATCH_ABOVE_MEMBERS the edge sends presence.batch frames (a raw subscriber sees one); the SDK's
    subscriber applies them and ends with the REST view."""
    raw = RawClient(stack.ws_url, stack.token(user("raw")))
    await raw.connect()
    await raw.send(type="subscribe", channel=channel)
    crowd = [user(f"crowd{i}") for i in range(BATCH_ABOVE_MEMBERS + 3)]
    async with contextlib.AsyncExitStack() as clients, heartbeating(raw):
        observer = await clients.enter_async_context(sdk(stack, user("observer")))
        view = await observer.subscribe(channel)
        members = [await clients.enter_async_context(sdk(stack, u)) for u in crowd]
        for member in members:
            await member.join(channel)
        await raw.next(lambda f: f["type"] == "presence.batch", timeout_s=15)
        await members[0].set_status("busy")
        await eventually(lambda: crowd[0] in view.members and view.members[crowd[0]].status == "busy")
        await eventually(lambda: _members_match(stack, channel, view.members))
        assert set(view.members) == set(crowd)
    await raw.close()


async def test_heartbeats_keep_a_quiet_client_online_past_its_timeout(stack: Stack, channel: str) -> None:
    alice_id = user("alice")
    async with sdk(stack, alice_id) as alice:
        await alice.join(channel)
        await eventually(lambda: _status_is(stack, channel, alice_id, "online"))
        quiet_until = time.monotonic() + 2 * TIMEOUT_S  # sends nothing itself: only the SDK's heartbeats
        await eventually(lambda: time.monotonic() > quiet_until, timeout_s=3 * TIMEOUT_S)
        assert alice.connected and alice.connections == 1
        assert alice_id in await rest_members(stack, channel)  # present (auto-away by now: heartbeats are no activity)


class CuttableProxy:
    """TCP in front of the edge that can cut every connection through it and refuse new ones: the
    client's network goes away without a close handshake, then comes back."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.open = True
        self.url = ""
        self._sockets: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> CuttableProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.open = False
        for writer in self._sockets:
            writer.transport.abort()
        self._sockets.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._sockets |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def test_a_cut_network_is_healed_by_a_reconnect_that_resumes(stack: Stack, channel: str) -> None:
    alice_id, bob_id = user("alice"), user("bob")
    async with CuttableProxy(stack.http_port) as proxy, sdk(stack, alice_id, url=proxy.url) as alice, \
            sdk(stack, bob_id) as bob:
        view = await alice.join(channel)
        await bob.join(channel)
        await eventually(lambda: {alice_id, bob_id} <= view.members.keys())
        changes: list[ChannelChange] = []
        view.on_change(changes.append)
        seq_before = view.seq

        proxy.cut()
        await bob.set_status("dnd", text="away from the cut")  # a change while alice is away
        await eventually(lambda: not alice.connected)  # she noticed the drop
        await eventually(lambda: _status_is(stack, channel, bob_id, "dnd"))
        proxy.open = True

        await eventually(lambda: alice.connections == 2)
        await eventually(lambda: view.members.get(bob_id) is not None and view.members[bob_id].status == "dnd")
        # The edge still holds the views she missed: it resumes her view (a snapshot would be a Resynced).
        resumed = [c for c in changes if isinstance(c, Resumed)]
        assert resumed and resumed[0].since >= seq_before and not any(isinstance(c, Resynced) for c in changes)
        assert view.seq is not None and seq_before is not None and view.seq > seq_before
        await eventually(lambda: _members_match(stack, channel, view.members))  # as the server's REST view


async def test_an_edge_restart_is_survived_with_a_fresh_view(stack: Stack, channel: str) -> None:
    """The edge alice is on stops (1012) and comes back on the same port: the SDK retries while nothing
    listens, and the edge it finds, which holds no old views, answers its `since` with a snapshot."""
    alice_id, bob_id = user("alice"), user("bob")
    port = free_port()
    edge = await start_edge(stack, "edge-sdk", port, "edge-sdk")
    try:
        async with sdk(stack, alice_id, url=f"http://127.0.0.1:{port}") as alice, sdk(stack, bob_id) as bob:
            view = await alice.join(channel)
            await bob.join(channel)
            await eventually(lambda: {alice_id, bob_id} <= view.members.keys())
            changes: list[ChannelChange] = []
            view.on_change(changes.append)

            await asyncio.to_thread(stop_edge, edge)
            await eventually(lambda: not alice.connected)
            await bob.set_status("dnd")
            edge = await start_edge(stack, "edge-sdk", port, "edge-sdk")

            await eventually(lambda: alice.connected and alice.connections == 2, timeout_s=20)
            await eventually(lambda: bob_id in view.members and view.members[bob_id].status == "dnd")
            assert any(isinstance(c, Resynced) for c in changes), changes
            await eventually(lambda: _members_match(stack, channel, view.members))
    finally:
        await asyncio.to_thread(stop_edge, edge)


async def _members_match(stack: Stack, channel: str, members: Any) -> bool:
    return {u: m.status for u, m in members.items()} == await rest_members(stack, channel)


async def _status_is(stack: Stack, channel: str, user_id: str, status: str) -> bool:
    return (await rest_members(stack, channel)).get(user_id) == status


async def test_a_user_forced_offline_by_a_service_is_not_reconnected(stack: Stack, channel: str) -> None:
    alice_id = user("alice")
    async with sdk(stack, alice_id) as alice:
        await alice.join(channel)
        await eventually(lambda: _status_is(stack, channel, alice_id, "online"))
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            answer = await http.post(f"/realtime/users/{alice_id}/presence/offline", json={"reason": "test"},
                                     headers={"Authorization": f"Bearer {stack.service_key()}"})
            assert answer.status_code == 200, answer.text
        with pytest.raises(ForcedOfflineError) as raised:
            await asyncio.wait_for(alice.wait_closed(), 10)
        assert raised.value.code == "connection.forced_offline" and alice.connections == 1
        with pytest.raises(ForcedOfflineError):
            await alice.set_status("online")


async def test_a_token_provider_keeps_the_socket_past_the_first_tokens_expiry(stack: Stack, channel: str) -> None:
    alice_id = user("alice")
    fresh: list[str] = []

    def provider() -> str:
        fresh.append(stack.token(alice_id, ttl_s=3600))
        return fresh[-1]

    short = stack.token(alice_id, ttl_s=4)
    async with connect(stack.base_url, token=short, token_provider=provider, backoff=QUICK) as alice:
        first_expiry = alice.token_expires_at
        assert first_expiry is not None
        await alice.join(channel)
        await eventually(lambda: alice.token_expires_at != first_expiry, timeout_s=10)  # auth.expiring answered
        assert fresh and alice.token_expires_at is not None and alice.token_expires_at > first_expiry
        await eventually(lambda: time.time() * 1000 > first_expiry + 1500, timeout_s=10)
        assert alice.connections == 1  # the socket outlived its first token
        assert (await alice.user(alice_id)).active


async def test_watch_and_query_follow_users_sharing_a_channel(stack: Stack, channel: str) -> None:
    alice_id, bob_id, stranger = user("alice"), user("bob"), user("stranger")
    async with sdk(stack, alice_id) as alice, sdk(stack, bob_id) as bob:
        await alice.join(channel)
        view = await bob.join(channel)
        await eventually(lambda: {alice_id, bob_id} <= view.members.keys())
        friends = await alice.watch([bob_id, stranger])
        await eventually(lambda: bob_id in friends)
        assert stranger in friends.not_found and stranger not in friends
        await bob.set_status("away", text="Lunch")
        await eventually(lambda: friends[bob_id].status == "away" and friends[bob_id].status_text == "Lunch")

        found = await alice.query([bob_id, stranger])
        assert found.users[bob_id].status == "away" and found.not_found == (stranger,)
        assert channel in (await alice.user(bob_id)).channels


async def test_the_readme_example_runs_as_written(stack: Stack, tmp_path: Path) -> None:
    blocks = BLOCK.findall(SDK_README.read_text())
    assert blocks, "clients/python/README.md has no ```python block"
    for index, code in enumerate(blocks):
        script = tmp_path / f"readme_{index}.py"
        script.write_text(code)
        env = {**os.environ, "PRESENCE_URL": stack.base_url, "PRESENCE_TOKEN": stack.token(user("reader")),
               "PRESENCE_SERVICE_KEY": stack.service_key()}
        process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env, cwd=tmp_path,
                                                       stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, f"block {index}\nstdout:\n{stdout.decode()}\nstderr:\n{stderr.decode()}"


async def test_the_readme_tour_prints_the_join_and_a_rest_update(stack: Stack, tmp_path: Path) -> None:
    """The root README's tour script, run as written: it prints its own arrival, then the update it is told."""
    tour = TOUR.read_text().split("## A 60-second tour", 1)[1]
    script = tmp_path / "tour.py"
    script.write_text(BLOCK.findall(tour)[0])
    dev_user = user("dev-user")
    token = stack.token(dev_user)
    env = {**os.environ, "PRESENCE_URL": stack.base_url, "TOKEN": token, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(sys.executable, str(script), env=env, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    lines: list[str] = []

    async def printed(prefix: str, shown: str) -> None:
        while not (lines and lines[-1].startswith(prefix) and shown in lines[-1]):
            line = await asyncio.wait_for(process.stdout.readline(), 20)  # type: ignore[union-attr]
            assert line, f"tour.py ended; it printed {lines}"
            lines.append(line.decode())

    try:
        await printed("joined lobby at seq", "")
        await printed("MemberJoined", f"'{dev_user}': 'online'")
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            answer = await http.post("/realtime/presence/update", json={"status": "away"},
                                     headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
        await printed("MemberUpdated", f"'{dev_user}': 'away'")
    finally:
        process.kill()
        await process.wait()

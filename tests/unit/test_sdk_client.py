"""The SDK's connection logic against a scripted fake edge on 127.0.0.1: resume after a drop, resync on
a gap, closes that end the client, token refresh, requests matched to answers, heartbeats, watches."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from presence_client import (
    AuthenticationError,
    Backoff,
    ChannelChange,
    Client,
    ConnectError,
    ForcedOfflineError,
    PresenceError,
    Resynced,
    UserGone,
    connect,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.unit.test_sdk_channel import diff, member, snapshot

FAST = Backoff(base_s=0.01, cap_s=0.05)


class Conn:
    """One socket of the fake edge, as its script sees it."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        assert ws.request is not None
        self.query = {k: v[0] for k, v in parse_qs(urlsplit(ws.request.path).query).items()}

    async def welcome(self, heartbeat_s: float = 30.0, **extra: Any) -> None:
        await self.send(type="welcome", connection_id="c" * 32, user_id="alice", edge_id="fake",
                        heartbeat_s=heartbeat_s, timeout_s=90.0, typing_timeout_s=6.0, **extra)

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect(self, kind: str, skip: tuple[str, ...] = ("heartbeat",)) -> dict[str, Any]:
        while True:
            frame: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 5))
            if frame["type"] == kind:
                return frame
            assert frame["type"] in skip, f"expected {kind}, got {frame}"

    async def hold(self) -> None:
        """Keeps the socket open until the client closes it."""
        await self.ws.wait_closed()


Script = Callable[[Conn], Awaitable[None]]


class FakeEdge:
    def __init__(self, url: str) -> None:
        self.url = url
        self.connections: list[Conn] = []


@asynccontextmanager
async def fake_edge(*scripts: Script, refuse: Response | None = None) -> AsyncIterator[FakeEdge]:
    """Each connection runs the next script. `refuse` answers every handshake instead."""
    edge = FakeEdge("")

    async def handle(ws: ServerConnection) -> None:
        conn = Conn(ws)
        edge.connections.append(conn)
        await scripts[len(edge.connections) - 1](conn)

    def process_request(ws: ServerConnection, request: Request) -> Response | None:
        return refuse

    async with serve(handle, "127.0.0.1", 0, process_request=process_request) as server:
        edge.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        yield edge


async def until(check: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_dropped_socket_is_reopened_and_the_channel_resumed_with_since() -> None:
    async def first(conn: Conn) -> None:
        assert conn.query == {"token": "t1", "device": "ios", "metadata": '{"name": "Ada"}'}
        await conn.welcome()
        join = await conn.expect("join")
        assert "since" not in join
        await conn.send(**snapshot(10, member("alice")), ref=join["ref"])
        await conn.send(**diff(11, 2, joins=(member("bob"),)))
        conn.ws.transport.abort()  # no close frame: a network cut

    async def second(conn: Conn) -> None:
        assert conn.query == {"token": "t1", "device": "ios"}  # the metadata was stored with the first socket
        await conn.welcome()
        join = await conn.expect("join")
        assert join["since"] == 11 and join["channel"] == "lobby"
        await conn.send(type="presence.resumed", channel="lobby", ref=None, since=11, seq=12)
        await conn.send(**diff(12, 2, updates=(member("bob", "busy"),)))
        await conn.hold()

    async with fake_edge(first, second) as edge, \
            connect(edge.url, token="t1", device="ios", metadata={"name": "Ada"}, backoff=FAST) as client:
        lobby = await client.join("lobby")
        await until(lambda: lobby.seq == 12)
        assert lobby.members["bob"].status == "busy" and client.connections == 2 and len(edge.connections) == 2


async def test_a_gap_resyncs_with_a_fresh_join_and_reports_it() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        join = await conn.expect("join")
        await conn.send(**snapshot(10, member("alice")), ref=join["ref"])
        await conn.send(**diff(12, 2, joins=(member("bob"),)))  # 11 is missing
        again = await conn.expect("join")
        assert "since" not in again
        await conn.send(**snapshot(12, member("alice"), member("bob")))
        await conn.hold()

    async with fake_edge(script) as edge, connect(edge.url, token="t1", backoff=FAST) as client:
        lobby = await client.join("lobby")
        changes: list[ChannelChange] = []
        lobby.on_change(changes.append)
        await until(lambda: lobby.seq == 12)
        assert set(lobby.members) == {"alice", "bob"}
        assert changes == [Resynced("lobby", 12, dict(lobby.members))]


async def test_forced_offline_ends_the_client_and_it_does_not_reconnect() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        await conn.expect("join")
        await conn.send(type="error", code="connection.forced_offline", message="by backend", retriable=False)
        await conn.ws.close(4409, "connection.forced_offline")

    async with fake_edge(script) as edge, connect(edge.url, token="t1", backoff=FAST) as client:
        with pytest.raises(ForcedOfflineError) as raised:
            await client.join("lobby")
        assert raised.value.code == "connection.forced_offline" and raised.value.message == "by backend"
        with pytest.raises(ForcedOfflineError):
            await client.wait_closed()
        with pytest.raises(ForcedOfflineError):
            await client.set_status("busy")
        assert len(edge.connections) == 1


async def test_an_expired_token_without_a_provider_ends_the_client() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        await conn.send(type="error", code="auth.token_expired", message="expired", retriable=False)
        await conn.ws.close(4401, "auth.token_expired")

    async with fake_edge(script) as edge, connect(edge.url, token="t1", backoff=FAST) as client:
        with pytest.raises(AuthenticationError) as raised:
            await client.wait_closed()
        assert raised.value.code == "auth.token_expired" and len(edge.connections) == 1


async def test_a_token_provider_reauthenticates_on_expiring_and_gives_the_token_of_a_reconnect() -> None:
    tokens = iter(["t2", "t3"])

    async def provider() -> str:
        return next(tokens)

    async def first(conn: Conn) -> None:
        assert conn.query["token"] == "t1"
        await conn.welcome(token_expires_at=1)
        await conn.send(type="auth.expiring", token_expires_at=1)
        auth = await conn.expect("auth")
        assert auth["token"] == "t2"
        await conn.send(type="ack", ref=auth["ref"], token_expires_at=2)
        await conn.send(type="error", code="auth.token_expired", message="expired", retriable=False)
        await conn.ws.close(4401, "auth.token_expired")

    async def second(conn: Conn) -> None:
        assert conn.query["token"] == "t3"
        await conn.welcome()
        await conn.hold()

    async with fake_edge(first, second) as edge, \
            connect(edge.url, token="t1", token_provider=provider, backoff=FAST) as client:
        await until(lambda: client.connections == 2)
    assert [c.query["token"] for c in edge.connections] == ["t1", "t3"]


async def test_a_refused_reauthentication_is_not_sent_again_on_the_next_socket() -> None:
    tokens = iter(["bad", "t3"])

    async def first(conn: Conn) -> None:
        await conn.welcome(token_expires_at=1)
        await conn.send(type="auth.expiring", token_expires_at=1)
        assert (await conn.expect("auth"))["token"] == "bad"
        await conn.send(type="error", code="auth.invalid_token", message="bad signature", retriable=False)
        await conn.ws.close(4401, "auth.invalid_token")

    async def second(conn: Conn) -> None:
        assert conn.query["token"] == "t3"
        await conn.welcome()
        await conn.send(type="ack", ref=(await conn.expect("update"))["ref"], event_id="e")  # no auth before it
        await conn.hold()

    async with fake_edge(first, second) as edge, \
            connect(edge.url, token="t1", token_provider=lambda: next(tokens), backoff=FAST) as client:
        await until(lambda: client.connections == 2)
        assert await client.set_status("online") == "e"


async def test_updates_answer_their_ack_and_errors_raise_by_code() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        update = await conn.expect("update")
        assert update == {"type": "update", "status": "busy", "status_text": "In a call", "expires_in_s": 60,
                          "ref": update["ref"]}
        await conn.send(type="ack", ref=update["ref"], event_id="e1")
        update = await conn.expect("update")
        await conn.send(type="error", code="channel.not_joined", message="no ref: answers nothing", retriable=False)
        await conn.send(type="error", code="presence.unknown_status", message="unknown", retriable=False,
                        ref=update["ref"])
        update = await conn.expect("update")
        await conn.send(type="error", code="request.too_large", message="big", retriable=False, ref=update["ref"])
        await conn.hold()

    async with fake_edge(script) as edge, connect(edge.url, token="t1") as client:
        assert await client.set_status("busy", text="In a call", expires_in_s=60) == "e1"
        with pytest.raises(PresenceError) as raised:
            await client.set_status("sleeping")
        assert raised.value.code == "presence.unknown_status"
        with pytest.raises(PresenceError, match="request.too_large"):
            await client.set_metadata({"big": "x"})


async def test_an_error_with_a_ref_raises_in_the_request_it_names() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        sent = {frame["status"]: frame["ref"] for frame in (await conn.expect("update"), await conn.expect("update"))}
        await conn.send(type="error", code="presence.unknown_status", message="unknown", retriable=False,
                        ref=sent["sleeping"])
        await conn.send(type="ack", ref=sent["busy"], event_id="e1")
        await conn.hold()

    async with fake_edge(script) as edge, connect(edge.url, token="t1") as client:
        busy = asyncio.create_task(client.set_status("busy"))
        sleeping = asyncio.create_task(client.set_status("sleeping"))
        with pytest.raises(PresenceError, match="presence.unknown_status"):
            await sleeping
        assert await busy == "e1"


async def test_heartbeats_go_out_at_the_welcomes_interval() -> None:
    seen = asyncio.Event()

    async def script(conn: Conn) -> None:
        await conn.welcome(heartbeat_s=0.1)  # one at least every 0.05 s of quiet
        start = time.monotonic()
        await conn.expect("heartbeat", skip=())
        await conn.expect("heartbeat", skip=())
        assert 0.09 <= time.monotonic() - start < 1
        seen.set()
        await conn.hold()

    async with fake_edge(script) as edge, connect(edge.url, token="t1"):
        await asyncio.wait_for(seen.wait(), 5)


async def test_typing_is_throttled_and_stop_lets_the_next_start_through() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        join = await conn.expect("join")
        await conn.send(**snapshot(10, member("alice")), ref=join["ref"])
        assert (await conn.expect("typing.start"))["channel"] == "lobby"
        await conn.expect("typing.stop")  # not a second typing.start: the throttle held it
        await conn.expect("typing.start")
        await conn.send(type="ack", ref=(await conn.expect("update"))["ref"], event_id="e")
        await conn.hold()

    async with fake_edge(script) as edge, connect(edge.url, token="t1", typing_interval_s=60) as client:
        lobby = await client.join("lobby")
        for _ in range(5):
            await lobby.typing()
        await lobby.stop_typing()
        await lobby.typing()
        await client.set_status("online")  # answered once the script has seen every frame before it


async def test_watch_keeps_a_live_mapping_and_is_sent_again_after_a_reconnect() -> None:
    def view(user_id: str, status: str) -> dict[str, Any]:
        return {"user_id": user_id, "status": status, "active": True, "last_seen": 1, "connections": 1,
                "devices": [], "status_text": None, "status_emoji": None, "status_metadata": {},
                "status_expires_at": None, "metadata": {}, "channels": ["lobby"]}

    listening = asyncio.Event()

    async def first(conn: Conn) -> None:
        await conn.welcome()
        watch = await conn.expect("watch")
        assert watch["users"] == ["bob", "carol"]
        await conn.send(type="presence.users", ref=watch["ref"], users=[view("bob", "online")], not_found=["carol"])
        await listening.wait()
        await conn.send(type="presence.user", user=view("carol", "busy"))
        await conn.send(type="presence.user.gone", user_id="bob")
        conn.ws.transport.abort()

    async def second(conn: Conn) -> None:
        await conn.welcome()
        watch = await conn.expect("watch")
        assert watch["users"] == ["bob", "carol"]
        await conn.send(type="presence.users", ref=None, users=[view("bob", "away"), view("carol", "busy")],
                        not_found=[])
        await conn.hold()

    async with fake_edge(first, second) as edge, connect(edge.url, token="t1", backoff=FAST) as client:
        friends = await client.watch(["carol", "bob"])
        changes: list[object] = []
        friends.on_change(changes.append)
        assert dict(friends) and friends.not_found == {"carol"}
        listening.set()
        await until(lambda: client.connections == 2 and friends.get("bob") is not None)
        assert {u: p.status for u, p in friends.items()} == {"bob": "away", "carol": "busy"}
        assert [type(c).__name__ for c in changes] == ["UserPresence", "UserGone"]
        assert changes[1] == UserGone("bob")


async def test_a_refused_handshake_raises_its_code_from_connect() -> None:
    body = json.dumps({"error": {"code": "auth.invalid_token", "message": "bad", "retriable": False}}).encode()
    refusal = Response(401, "Unauthorized", Headers({"Content-Type": "application/json"}), body)
    async with fake_edge(refuse=refusal) as edge:
        with pytest.raises(AuthenticationError) as raised:
            async with connect(edge.url, token="nope"):
                pass
    assert raised.value.code == "auth.invalid_token"


async def test_rest_reads_use_the_token_and_raise_error_codes() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer t1"
        if request.url.path == "/realtime/presence/query":
            assert json.loads(request.content) == {"user_ids": ["bob", "zed"]}
            return httpx.Response(200, json={"users": [{"user_id": "bob", "status": "busy", "active": True,
                                                        "last_seen": 5}], "not_found": ["zed"]})
        return httpx.Response(404, json={"error": {"code": "user.not_found", "message": "no", "retriable": False}})

    async def script(conn: Conn) -> None:
        await conn.welcome()
        await conn.hold()

    async with fake_edge(script) as edge, \
            Client(edge.url, "t1", transport=httpx.MockTransport(answer)) as client:
        found = await client.query(["bob", "zed"])
        assert found.users["bob"].status == "busy" and found.not_found == ("zed",)
        with pytest.raises(PresenceError) as raised:
            await client.user("zed")
        assert raised.value.code == "user.not_found"


async def test_changes_end_on_leave_and_raise_the_error_that_ends_the_client() -> None:
    async def script(conn: Conn) -> None:
        await conn.welcome()
        for _ in range(2):
            join = await conn.expect("join")
            await conn.send(**{**snapshot(10, member("alice")), "channel": join["channel"]}, ref=join["ref"])
        leave = await conn.expect("leave")
        await conn.send(type="ack", ref=leave["ref"], channel="lobby")
        await conn.send(**diff(11, 2, joins=(member("bob"),), typing=("bob",)))
        await conn.send(type="error", code="connection.forced_offline", message="", retriable=False)
        await conn.ws.close(4409)

    async def collect(changes: AsyncIterator[ChannelChange]) -> list[ChannelChange]:
        return [change async for change in changes]

    async with fake_edge(script) as edge, connect(edge.url, token="t1", backoff=FAST) as client:
        lobby, hall = await client.join("lobby"), await client.join("hall")
        lobby.on_change(lambda change: 1 / 0)  # noqa: B023 - an application bug in a callback
        left, ended = asyncio.create_task(collect(hall.changes())), asyncio.create_task(collect(lobby.changes()))
        await hall.leave()
        assert await left == []
        with pytest.raises(ForcedOfflineError):
            await ended
        assert lobby.typing_users == {"bob"}, "the failing callback did not stop the frames being applied"


async def test_a_first_connection_that_cannot_be_made_raises_connect_error() -> None:
    async with fake_edge() as edge:
        url = edge.url
    with pytest.raises(ConnectError):
        async with connect(url, token="t1"):
            pass

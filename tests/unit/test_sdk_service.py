"""The SDK's ServiceClient against httpx.MockTransport: every request exactly as sent (path, query, body,
service key), pages followed to the end, queries cut into chunks of 500, and error answers raised as the
typed `PresenceError`s the `Client`'s REST reads raise."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from presence_client import (
    AuthenticationError,
    ChannelSummary,
    PresenceError,
    ServiceClient,
    Welcome,
)

KEY = "psk.backend." + "s" * 24
Handler = Callable[[httpx.Request], httpx.Response]


class Edge:
    """Answers each request with `handler` and records what came, with its body decoded."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {KEY}"
        self.requests.append(request)
        return self.handler(request)

    def client(self) -> ServiceClient:
        return ServiceClient("http://edge.test/", KEY, transport=httpx.MockTransport(self))

    def sent(self) -> list[tuple[str, str, dict[str, str], Any]]:
        return [(r.method, r.url.path, dict(r.url.params), json.loads(r.content) if r.content else None)
                for r in self.requests]


def member(user_id: str, status: str = "online") -> dict[str, Any]:
    return {"user_id": user_id, "status": status, "status_text": None, "status_emoji": None, "connections": 1,
            "devices": [], "joined_at": 1, "last_seen": 2, "metadata": {}, "status_metadata": {}}


def view(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "status": "online", "active": True, "last_seen": 5, "connections": 1,
            "devices": ["web"], "channels": ["lobby"]}


async def test_channel_follows_next_cursor_to_the_last_page() -> None:
    pages = {None: (["ada", "bob"], "bob"), "bob": (["cy"], "cy"), "cy": ([], None)}

    def answer(request: httpx.Request) -> httpx.Response:
        names, cursor = pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"channel": "team:1", "seq": 40 + len(names), "occupancy": 3,
                                         "typing": ["cy"], "members": [member(n) for n in names],
                                         "next_cursor": cursor})

    edge = Edge(answer)
    async with edge.client() as svc:
        read = await svc.channel("team:1", status="online", include_metadata=False)
    assert list(read.members) == ["ada", "bob", "cy"] and read.members["cy"].status == "online"
    assert (read.channel, read.seq, read.occupancy, read.typing, read.next_cursor) == (
        "team:1", 40, 3, frozenset({"cy"}), None)
    first = {"limit": "1000", "include_metadata": "false", "status": "online"}
    assert edge.sent() == [
        ("GET", "/realtime/channels/team:1/presence", first, None),
        ("GET", "/realtime/channels/team:1/presence", {**first, "cursor": "bob"}, None),
        ("GET", "/realtime/channels/team:1/presence", {**first, "cursor": "cy"}, None),
    ]
    assert "%3A" in edge.requests[0].url.raw_path.decode()  # the channel id is one path segment, escaped


async def test_channels_follows_next_cursor_and_keys_by_channel() -> None:
    pages = {None: (["a", "b"], "b"), "b": (["c"], None)}

    def answer(request: httpx.Request) -> httpx.Response:
        names, cursor = pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"channels": [{"channel": n, "occupancy": 2, "seq": 7, "typing": ["x"]}
                                                      for n in names], "next_cursor": cursor})

    edge = Edge(answer)
    async with edge.client() as svc:
        channels = await svc.channels()
    assert list(channels) == ["a", "b", "c"]
    assert channels["c"] == ChannelSummary(channel="c", occupancy=2, seq=7, typing=frozenset({"x"}))
    assert edge.sent() == [("GET", "/realtime/channels", {"limit": "1000"}, None),
                           ("GET", "/realtime/channels", {"limit": "1000", "cursor": "b"}, None)]


async def test_query_asks_500_ids_at_a_time_and_merges_the_answers() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        ids = json.loads(request.content)["user_ids"]
        return httpx.Response(200, json={"users": [view(i) for i in ids if int(i[1:]) % 2 == 0],
                                         "not_found": [i for i in ids if int(i[1:]) % 2]})

    edge = Edge(answer)
    ids = [f"u{n}" for n in range(1200)]
    async with edge.client() as svc:
        found = await svc.query([*ids, "u3"])  # an id given twice is asked once
    assert [body["user_ids"] for _, _, _, body in edge.sent()] == [ids[:500], ids[500:1000], ids[1000:]]
    assert {path for _, path, _, _ in edge.sent()} == {"/realtime/presence/query"}
    assert list(found.users) == ids[::2] and found.not_found == tuple(ids[1::2])
    assert found.users["u1198"].channels == ("lobby",)


async def test_query_of_no_ids_sends_nothing() -> None:
    edge = Edge(lambda request: httpx.Response(500))
    async with edge.client() as svc:
        found = await svc.query([])
    assert (found.users, found.not_found, edge.requests) == ({}, (), [])


async def test_user_reads_one_view_with_its_id_escaped() -> None:
    edge = Edge(lambda request: httpx.Response(200, json=view("a/b")))
    async with edge.client() as svc:
        seen = await svc.user("a/b")
    assert seen.user_id == "a/b" and seen.active and seen.devices == ("web",)
    assert edge.requests[0].url.raw_path == b"/realtime/users/a%2Fb/presence"


async def test_set_presence_sends_only_the_fields_given() -> None:
    edge = Edge(lambda request: httpx.Response(200, json={"event_id": "e" * 32, "user_id": "ada", "status": None,
                                                          "accepted_at": 1, "accepted_at_iso": "x"}))
    async with edge.client() as svc:
        assert await svc.set_presence("ada", status="busy", text="", emoji="📞", expires_in_s=60,
                                      metadata={"team": "a"}, wait=True) == "e" * 32
        assert await svc.set_presence("ada", metadata={}) == "e" * 32
    assert edge.sent() == [
        ("POST", "/realtime/users/ada/presence", {"wait": "true"},
         {"status": "busy", "status_text": "", "status_emoji": "📞", "expires_in_s": 60, "metadata": {"team": "a"}}),
        ("POST", "/realtime/users/ada/presence", {}, {"metadata": {}}),
    ]


async def test_force_offline_sends_the_reason_or_no_body() -> None:
    edge = Edge(lambda request: httpx.Response(200, json={"event_id": "f" * 32, "user_id": "ada",
                                                          "service": "backend", "reason": None}))
    async with edge.client() as svc:
        assert await svc.force_offline("ada", reason="account suspended") == "f" * 32
        assert await svc.force_offline("ada") == "f" * 32
    assert edge.sent() == [("POST", "/realtime/users/ada/presence/offline", {}, {"reason": "account suspended"}),
                           ("POST", "/realtime/users/ada/presence/offline", {}, None)]
    assert edge.requests[1].content == b""


def error(status: int, code: str, retriable: bool = False) -> Handler:
    body = {"error": {"code": code, "message": f"said {code}", "retriable": retriable}}
    return lambda request: httpx.Response(status, json=body)


@pytest.mark.parametrize(("handler", "kind", "code", "retriable"), [
    (error(404, "user.not_found"), PresenceError, "user.not_found", False),
    (error(401, "auth.invalid_token"), AuthenticationError, "auth.invalid_token", False),
    (error(403, "auth.service_only"), PresenceError, "auth.service_only", False),
    (error(503, "service.not_ready", retriable=True), PresenceError, "service.not_ready", True),
    (lambda request: httpx.Response(502, text="<html>bad gateway</html>"), PresenceError, "http.502", False),
])
async def test_error_answers_raise_the_typed_presence_error(handler: Handler, kind: type[PresenceError], code: str,
                                                           retriable: bool) -> None:
    edge = Edge(handler)
    async with edge.client() as svc:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: svc.user("ada"), lambda: svc.channel("lobby"), svc.channels, lambda: svc.query(["ada"]),
            lambda: svc.set_presence("ada", status="busy"), lambda: svc.force_offline("ada")]
        for call in calls:
            with pytest.raises(PresenceError) as raised:
                await call()
            assert type(raised.value) is kind and (raised.value.code, raised.value.retriable) == (code, retriable)
    assert len(edge.requests) == 6  # a refused service key is not tried again: there is no provider to renew it


def test_a_service_socket_welcome_names_the_service() -> None:
    welcome = Welcome.from_json({"type": "welcome", "connection_id": "c", "user_id": "", "edge_id": "e",
                                 "heartbeat_s": 30, "timeout_s": 90, "typing_timeout_s": 6,
                                 "token_expires_at": None, "service": "backend"})
    assert (welcome.user_id, welcome.service, welcome.token_expires_at) == ("", "backend", None)

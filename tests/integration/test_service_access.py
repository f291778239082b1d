"""Service keys against the real stack (docs/api.md#service-keys): a service sets a user's presence and
forces it offline, each act an event in the log naming the service; it reads any channel; its socket
observes only; end-user tokens are refused on its routes and it is refused on theirs."""

from __future__ import annotations

from typing import Any

import httpx

from schemas.events import Event, PresenceUpdated, UserForcedOffline
from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.log import logged_events
from tests.integration.stack import Stack, eventually


def service_http(stack: Stack, name: str = "backend") -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.base_url, timeout=30,
                             headers={"Authorization": f"Bearer {stack.service_key(name)}"})


async def logged(stack: Stack, event_id: str) -> Event:
    found: list[Event] = []

    async def in_log() -> bool:
        found[:] = [e for e in await logged_events(stack.bootstrap) if e.event_id == event_id]
        return bool(found)

    await eventually(in_log, timeout_s=20)
    return found[0]


async def test_a_service_sets_a_users_status_and_metadata(stack: Stack, connect, channel: str) -> None:
    ada = user("ada")
    socket = await connect(ada)
    async with heartbeating(socket), service_http(stack) as http:
        await socket.join(channel)
        answer = await http.post(f"/realtime/users/{ada}/presence", params={"wait": "true"},
                                 json={"status": "busy", "status_text": "On a call", "metadata": {"name": "Ada"}})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["user_id"], body["status"], body["presence"]["status"]) == (ada, "busy", "busy")
        assert body["presence"]["metadata"] == {"name": "Ada"}

        # The user's own socket sees it, as every member of the channel does.
        await socket.next(diff_with(channel, "updates", ada, status="busy", status_text="On a call"), timeout_s=15)
        # A body naming another user than the path is refused, as on the update route.
        other = await http.post(f"/realtime/users/{ada}/presence", json={"user_id": "someone", "status": "away"})
        assert (other.status_code, other.json()["error"]["code"]) == (403, "presence.forbidden_user")

    event = await logged(stack, body["event_id"])
    assert isinstance(event, PresenceUpdated)
    assert (event.user_id, event.service, event.status, event.v) == (ada, "backend", "busy", 2)


async def test_a_service_forces_a_user_offline(stack: Stack, connect, channel: str) -> None:
    bob, watcher = user("bob"), await connect(user("watcher"))
    phone, laptop = await connect(bob, device="ios"), await connect(bob, device="web")
    async with heartbeating(watcher, phone, laptop), service_http(stack, "dashboard") as http:
        await watcher.send(type="subscribe", channel=channel)
        await phone.join(channel)
        await laptop.join(channel)
        await watcher.next(diff_with(channel, "joins", bob), timeout_s=15)
        start = len(watcher.frames)

        answer = await http.post(f"/realtime/users/{bob}/presence/offline", json={"reason": "account suspended"})
        assert answer.status_code == 200, answer.text
        accepted = answer.json()
        assert (accepted["service"], accepted["reason"]) == ("dashboard", "account suspended")

        for socket in (phone, laptop):  # both sockets, whichever edge: closed with 4409, told why
            error = await socket.next(lambda f: f["type"] == "error", timeout_s=15)
            assert (error["code"], error["retriable"]) == ("connection.forced_offline", False)

            async def closed(socket: Client = socket) -> bool:
                return socket._ws.close_code is not None

            await eventually(closed, timeout_s=15)
            assert socket._ws.close_code == 4409

        await watcher.next(diff_with(channel, "leaves", bob), after=start, timeout_s=15)
        assert bob not in watcher.members(channel)
        view = (await http.get(f"/realtime/users/{bob}/presence")).json()
        assert (view["status"], view["connections"], view["last_seen"]) == (
            "offline", 0, accepted["forced_offline_at"])
        # An empty body is no reason, and an offline user may be forced again: nothing changes.
        again = await http.post(f"/realtime/users/{bob}/presence/offline")
        assert (again.status_code, again.json()["reason"]) == (200, None)
        bad = await http.post(f"/realtime/users/{bob}/presence/offline", json={"why": "x"})
        assert (bad.status_code, bad.json()["error"]["code"]) == (400, "request.invalid")

    event = await logged(stack, accepted["event_id"])
    assert isinstance(event, UserForcedOffline)
    assert (event.user_id, event.service, event.reason, event.at) == (
        bob, "dashboard", "account suspended", accepted["forced_offline_at"])


async def test_a_socket_opened_after_a_forced_offline_is_not_told_it_was_forced(stack: Stack, connect,
                                                                                channel: str) -> None:
    """The state names the connections a forced offline ended. A later connection of the same user
    that the processor ends for another reason (here the user erases itself) is closed as such (4408,
    free to reconnect), not as forced offline (4409)."""
    frank = user("frank")
    before = await connect(frank)
    async with heartbeating(before), service_http(stack) as http:
        await before.join(channel)
        answer = await http.post(f"/realtime/users/{frank}/presence/offline")
        assert answer.status_code == 200, answer.text
        error = await before.next(lambda f: f["type"] == "error", timeout_s=15)
        assert error["code"] == "connection.forced_offline"
    after = await connect(frank)
    async with heartbeating(after), httpx.AsyncClient(base_url=stack.base_url, timeout=15) as http:
        await after.join(channel)
        erased = await http.delete(f"/realtime/users/{frank}/presence",
                                   headers={"Authorization": f"Bearer {stack.token(frank)}"})
        assert erased.status_code in (200, 202), erased.text
        error = await after.next(lambda f: f["type"] == "error", timeout_s=15)
        assert (error["code"], error["retriable"]) == ("connection.timed_out", True)

        async def closed() -> bool:
            return after._ws.close_code is not None

        await eventually(closed, timeout_s=15)
        assert after._ws.close_code == 4408


async def test_a_service_reads_a_channel_no_token_claim_names(stack: Stack, connect, channel: str) -> None:
    member = await connect(user("carol"), channels=[channel])
    async with heartbeating(member), service_http(stack) as http:
        await member.join(channel)

        async def listed() -> Any:
            answer = await http.get(f"/realtime/channels/{channel}/presence")
            return answer.status_code == 200 and member.user_id in {m["user_id"] for m in answer.json()["members"]}

        await eventually(listed, timeout_s=15)
        restricted = {"Authorization": f"Bearer {stack.token(user('dave'), ['elsewhere-*'])}"}
        refused = await http.get(f"/realtime/channels/{channel}/presence", headers=restricted)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "auth.channel_forbidden")


async def test_user_tokens_are_refused_on_service_routes_and_service_keys_on_user_routes(stack: Stack) -> None:
    erin = user("erin")
    as_user = {"Authorization": f"Bearer {stack.token(erin)}"}
    async with service_http(stack) as http:
        for method, path, body in [("POST", f"/realtime/users/{erin}/presence", {"status": "away"}),
                                   ("POST", f"/realtime/users/{erin}/presence/offline", None)]:
            answer = await http.request(method, path, json=body, headers=as_user)
            assert (answer.status_code, answer.json()["error"]["code"]) == (403, "auth.service_only"), path
        for method, path, body in [("POST", "/realtime/presence/update", {"status": "away"}),
                                   ("DELETE", f"/realtime/users/{erin}/presence", None)]:
            answer = await http.request(method, path, json=body)
            assert (answer.status_code, answer.json()["error"]["code"]) == (403, "auth.user_only"), path
        wrong = await http.post(f"/realtime/users/{erin}/presence", json={"status": "away"},
                                headers={"Authorization": "Bearer psk.backend.not-the-secret"})
        assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "auth.invalid_token")
        # One route for GET, DELETE and POST: a 405 names them all.
        put = await http.put(f"/realtime/users/{erin}/presence")
        assert put.status_code == 405 and set(put.headers["allow"].split(", ")) >= {"GET", "DELETE", "POST"}


async def test_a_service_socket_observes_only(stack: Stack, connect, channel: str) -> None:
    observer = Client(stack.ws_url, stack.service_key("dashboard"))
    welcome = await observer.connect()
    assert (welcome["user_id"], welcome["service"], welcome["token_expires_at"]) == ("", "dashboard", None)
    frank = await connect(user("frank"))
    try:
        async with heartbeating(observer, frank):
            await observer.send(type="subscribe", channel=channel, ref="s1")
            await observer.next(lambda f: f["type"] == "presence.snapshot" and f.get("ref") == "s1")
            await frank.join(channel)
            await observer.next(diff_with(channel, "joins", frank.user_id), timeout_s=15)
            for frame in ({"type": "join", "channel": channel}, {"type": "leave", "channel": channel},
                          {"type": "typing.start", "channel": channel}, {"type": "typing.stop", "channel": channel},
                          {"type": "update", "status": "busy"}):
                start = len(observer.frames)
                await observer.send(**frame)
                assert (await observer.error(after=start))["code"] == "auth.service_observer", frame
            start = len(observer.frames)
            await observer.send(type="auth", token=stack.service_key("dashboard"), ref="a1")
            ack = await observer.next(lambda f: f["type"] == "ack" and f.get("ref") == "a1", after=start)
            assert ack["token_expires_at"] is None
            await observer.send(type="unsubscribe", channel=channel, ref="u1")
            await observer.next(lambda f: f["type"] == "ack" and f.get("ref") == "u1")
    finally:
        await observer.close()
    # Nothing was written for the service's socket: no connection, no heartbeat, no lease of it.
    events = await logged_events(stack.bootstrap)
    assert not [e for e in events if e.connection_id == welcome["connection_id"] or e.user_id == ""]

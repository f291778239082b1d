"""The JavaScript client (/realtime/client.js) in headless Chromium against the real stack: the live
presence it keeps follows another user (a raw WebSocket client) joining, changing status, typing and
leaving; its own updates reach the others; it survives its timeout on heartbeats and resumes after a drop."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page

from tests.integration.browser import chromium, opened_page
from tests.integration.client import heartbeating
from tests.integration.stack import CORS_ORIGIN, TIMEOUT_S, Stack, eventually

pytestmark = pytest.mark.integration

OPEN_CLIENT = """async ([token, channel]) => {
  const { connect } = await import("/realtime/client.js");
  const client = await connect(location.origin, { token, device: "web", metadata: { name: "Alice" } });
  window.events = [];
  for (const type of ["reconnecting", "open", "close"]) {
    client.addEventListener(type, (event) => window.events.push([type, event.detail.resumed ?? null]));
  }
  window.client = client;
  window.lobby = await client.join(channel);
  return client.welcome.user_id;
}"""

VIEW = """() => ({
  seq: window.lobby.seq,
  members: Object.fromEntries([...window.lobby.members].map(([id, m]) => [id, m])),
  typing: [...window.lobby.typing],
  state: window.client.state,
})"""


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def view(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(VIEW)
    return result


async def test_client_js_is_served_as_a_module(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        first = await http.get("/realtime/client.js")
        again = await http.get("/realtime/client.js", headers={"If-None-Match": first.headers["etag"]})
    assert first.status_code == 200
    assert first.headers["content-type"] == "text/javascript; charset=utf-8"
    assert first.headers["cache-control"] == "no-cache"
    assert "export function connect" in first.text
    assert again.status_code == 304


async def test_live_presence_follows_another_user(stack: Stack, connect, channel: str, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    alice, bob_id = f"alice-{channel}", f"bob-{channel}"  # users of their own: a status outlives a test
    async with opened_page(browser) as (page, errors):
        await page.goto(f"{stack.base_url}/healthz")  # any page of the edge's origin
        assert await page.evaluate(OPEN_CLIENT, [stack.token(alice), channel]) == alice
        bob = await connect(bob_id, device="ios")
        async with heartbeating(bob):
            await bob.join(channel)
            await eventually(lambda: _has(page, bob_id, status="online", devices=["ios"]))
            await eventually(lambda: _member_in(bob, channel, alice, metadata={"name": "Alice"}, devices=["web"]))

            await bob.send(type="update", status="busy", status_text="In a call", ref="u1")
            await eventually(lambda: _has(page, bob_id, status="busy", status_text="In a call"))

            await bob.send(type="typing.start", channel=channel)
            await eventually(lambda: _typing(page, [bob_id]))
            await bob.send(type="typing.stop", channel=channel)
            await eventually(lambda: _typing(page, []))

            event_id = await page.evaluate("window.client.setStatus('dnd', { text: 'Focus' })")
            assert len(event_id) == 32
            await eventually(lambda: _member_in(bob, channel, alice, status="dnd", status_text="Focus"))
            error = await page.evaluate(
                "window.client.setStatus('sleeping').catch((e) => [e.name, e.code, e instanceof Error])")
            assert error == ["PresenceError", "presence.unknown_status", True]

            await asyncio.sleep(TIMEOUT_S * 1.5)  # time passing, not a wait for a frame: heartbeats keep alice on
            assert (await view(page))["state"] == "open"
            assert alice in bob.members(channel)

            await bob.send(type="leave", channel=channel, ref="l1")
            await eventually(lambda: _absent(page, bob_id))
        assert errors == []


async def test_resumes_with_since_after_a_drop(stack: Stack, connect, channel: str, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    erin = f"erin-{channel}"  # users of their own: a status outlives a test
    async with opened_page(browser) as (page, errors):
        await page.goto(f"{stack.base_url}/healthz")
        await page.evaluate(OPEN_CLIENT, [stack.token(erin), channel])
        bob = await connect(f"bob-{channel}")
        async with heartbeating(bob):
            await bob.join(channel)
            await eventually(lambda: _has(page, bob.user_id, status="online"))
            held = (await view(page))["seq"]
            await page.evaluate("""() => {
              window.received = [];
              const receive = window.client._receive.bind(window.client);
              window.client._receive = (frame) => { window.received.push(frame.type); receive(frame); };
              window.client._ws.close(4000);  // a drop: not a clean close
            }""")
            await eventually(lambda: _events(page, [["reconnecting", None], ["open", True]]))
            await bob.send(type="update", status="away", ref="u2")
            await eventually(lambda: _has(page, bob.user_id, status="away"))
            assert (await view(page))["seq"] > held
            received = await page.evaluate("window.received")
            assert "presence.resumed" in received and "presence.snapshot" not in received, received
            # Back within the reconnect grace: the others never saw erin leave.
            assert not [f for f in bob.frames if f["type"] == "presence.diff"
                        and any(d["user_id"] == erin for d in f["leaves"])]
            assert erin in bob.members(channel)
        assert errors == []


async def _has(page: Page, user: str, **fields: Any) -> bool:
    member = (await view(page))["members"].get(user)
    return member is not None and all(member[k] == v for k, v in fields.items())


async def _absent(page: Page, user: str) -> bool:
    return user not in (await view(page))["members"]


async def _typing(page: Page, users: list[str]) -> bool:
    return bool((await view(page))["typing"] == users)


async def _events(page: Page, expected: list[list[Any]]) -> bool:
    return bool(await page.evaluate("window.events") == expected)


async def _member_in(client: Any, channel: str, user: str, **fields: Any) -> bool:
    member = client.members(channel).get(user)
    return member is not None and all(member[k] == v for k, v in fields.items())


async def test_forced_offline_ends_the_client(stack: Stack, connect, channel: str, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    frank = f"frank-{channel}"
    async with opened_page(browser) as (page, errors):
        await page.goto(f"{stack.base_url}/healthz")
        await page.evaluate(OPEN_CLIENT, [stack.token(frank), channel])
        bob = await connect(f"bob-{channel}")
        async with heartbeating(bob), httpx.AsyncClient(base_url=stack.base_url) as http:
            await bob.join(channel)
            await eventually(lambda: frank in bob.members(channel))
            answer = await http.post(f"/realtime/users/{frank}/presence/offline", json={"reason": "test"},
                                     headers={"Authorization": f"Bearer {stack.service_key('backend')}"})
            assert answer.status_code == 200, answer.text
            await eventually(lambda: _events(page, [["close", None]]))
            closed = await page.evaluate("[window.client.state, window.client.closeInfo.code, "
                                         "window.client.closeInfo.error.code]")
            assert closed == ["closed", 4409, "connection.forced_offline"]
            await eventually(lambda: frank not in bob.members(channel))
        assert errors == []


async def test_token_provider_reauthenticates_the_open_socket(stack: Stack, browser: Browser) -> None:
    grace = f"grace-{uuid.uuid4().hex[:8]}"
    tokens = [stack.token(grace, ttl_s=3), stack.token(grace, ttl_s=3600)]
    async with opened_page(browser) as (page, errors):
        await page.goto(f"{stack.base_url}/healthz")
        await page.evaluate("""async (tokens) => {
          const { connect } = await import("/realtime/client.js");
          window.events = [];
          window.client = await connect(location.origin, { tokenProvider: async () => tokens.shift() });
          for (const type of ["reconnecting", "close"]) {
            window.client.addEventListener(type, () => window.events.push(type));
          }
        }""", tokens)
        expires_at = await page.evaluate("window.client.welcome.token_expires_at")
        await eventually(lambda: _token_is(page, tokens[1]), timeout_s=10)
        await asyncio.sleep(max(0.0, expires_at / 1000 - time.time()) + 1)  # time passing: past the first token's exp
        assert await page.evaluate("[window.client.state, window.events]") == ["open", []]
        assert errors == []


async def _token_is(page: Page, token: str) -> bool:
    return bool(await page.evaluate("window.client.token") == token)


async def test_watch_pushes_a_watched_users_changes(stack: Stack, connect, channel: str, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    watcher, friend = f"wendy-{channel}", f"fred-{channel}"
    async with opened_page(browser) as (page, errors):
        await page.goto(f"{stack.base_url}/healthz")
        await page.evaluate(OPEN_CLIENT, [stack.token(watcher), channel])  # sharing the channel: fred is readable
        fred = await connect(friend)
        async with heartbeating(fred):
            await fred.join(channel)
            await eventually(lambda: _has(page, friend, status="online"))
            answer = await page.evaluate("""async (ids) => {
              window.users = [];
              window.client.addEventListener("user", (event) => window.users.push(event.detail.user));
              return await window.client.watch(ids);
            }""", [friend, "nobody-at-all"])
            assert [u["user_id"] for u in answer["users"]] == [friend]
            assert answer["not_found"] == ["nobody-at-all"]
            await fred.send(type="update", status="busy", ref="u3")
            await eventually(lambda: _pushed(page, friend, "busy"))
        assert errors == []


async def _pushed(page: Page, user: str, status: str) -> bool:
    users = await page.evaluate("window.users")
    return any(u is not None and u["user_id"] == user and u["status"] == status for u in users)


async def test_a_page_of_an_allowed_origin_imports_and_connects(stack: Stack, channel: str, browser: Browser) -> None:
    """Module scripts are fetched with CORS: a page of a PRESENCE_CORS_ORIGINS origin may import the client and
    open its socket; a page of another origin cannot even import it."""
    user = f"olga-{channel}"
    for origin, allowed in ((CORS_ORIGIN, True), ("https://elsewhere.example", False)):
        # The edge listens on loopback: Chromium asks the user before a site reaches it; granted here.
        async with opened_page(browser, permissions=["local-network-access"]) as (page, errors):
            await page.route(f"{origin}/", lambda route: route.fulfill(content_type="text/html", body="<p>app</p>"))
            await page.goto(f"{origin}/")
            outcome = await page.evaluate("""async ([base, token, channel]) => {
              try {
                const { connect } = await import(`${base}/realtime/client.js`);
                const client = await connect(base, { token });
                const lobby = await client.join(channel);
                return [client.welcome.user_id, lobby.seq !== null];
              } catch (error) {
                return String(error);
              }
            }""", [stack.base_url, stack.token(user), channel])
            if allowed:
                assert outcome == [user, True], errors
                assert errors == []
            else:
                assert "Failed to fetch dynamically imported module" in outcome
                assert any("Access-Control-Allow-Origin" in error for error in errors), errors

"""The dashboard (/dashboard) in headless Chromium against the real stack, with the stack's `dashboard`
service key: the channel list, a channel's members with status, devices and metadata, who is typing,
the occupancy chart, and the act-as-a-user panel, checked in the DOM and in full-page screenshots
(saved under the test logs dir, screenshots/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser

from tests.integration import browser as browser_module
from tests.integration.browser import chromium, opened_page, pixel_at_centre, screenshot
from tests.integration.client import Client, heartbeating
from tests.integration.stack import Stack, eventually

pytestmark = pytest.mark.integration

ONLINE, BUSY, DND = (0x2E, 0xA4, 0x4F), (0xD6, 0x45, 0x41), (0x8E, 0x1C, 0x3B)  # dashboard.css


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


async def test_dashboard_files_are_served(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        page = await http.get("/dashboard")
        script = await http.get("/dashboard/dashboard.js")
        style = await http.get("/dashboard/dashboard.css")
        missing = await http.get("/dashboard/secrets.txt")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-frame-options"] == "DENY"
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert 'from "/realtime/client.js"' in script.text
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "route.not_found"


async def test_dashboard_shows_a_channel_live(stack: Stack, connect, channel: str, browser: Browser) -> None:  # type: ignore[no-untyped-def]
    alice_id, bob_id, carol_id = (f"{name}-{channel}" for name in ("alice", "bob", "carol"))
    alice = await connect(alice_id, device="ios", metadata='{"name": "Alice", "team": "core"}')
    bob = await connect(bob_id, device="web")
    async with heartbeating(alice, bob), opened_page(browser) as (page, errors):
        await alice.join(channel)
        await bob.join(channel)
        await eventually(lambda: bob_id in alice.members(channel) and alice_id in bob.members(channel))

        await page.goto(f"{stack.base_url}/dashboard")
        await screenshot(page, stack.logs, "dashboard-start")
        await page.fill("#credential", stack.service_key("dashboard"))
        await page.click("#credential-connect")
        await page.wait_for_selector('#connection[data-state="open"]')
        assert await page.evaluate("sessionStorage.length") == 1 and await page.evaluate("localStorage.length") == 0
        assert "psk." not in page.url
        await page.reload()  # the key is kept for the tab: the page connects again by itself
        await page.wait_for_selector('#connection[data-state="open"]')

        entry = page.locator(f'#channels li[data-channel="{channel}"]')
        await entry.wait_for()
        assert await entry.get_attribute("data-occupancy") == "2"
        await entry.click()
        await page.wait_for_selector(f'#members tr[data-user="{bob_id}"]')
        row = page.locator(f'#members tr[data-user="{alice_id}"]')
        assert await row.get_attribute("data-status") == "online"
        assert await row.locator(".devices .chip").all_inner_texts() == ["ios"]
        assert '"name":"Alice"' in await row.locator(".metadata").inner_text()
        assert await page.inner_text("#occupancy") == "2"

        await bob.send(type="update", status="busy", status_text="In a call", ref="u1")
        await page.wait_for_selector(f'#members tr[data-user="{bob_id}"][data-status="busy"]')
        assert await page.locator(f'#members tr[data-user="{bob_id}"] .status-text').inner_text() == "In a call"
        await bob.send(type="typing.start", channel=channel)
        await page.wait_for_selector(f'#typing[data-typing="{bob_id}"]')

        image = await screenshot(page, stack.logs, "dashboard-channel")
        online = await pixel_at_centre(page, image, f'#members tr[data-user="{alice_id}"] .status-dot')
        busy = await pixel_at_centre(page, image, f'#members tr[data-user="{bob_id}"] .status-dot')
        assert _near(online, ONLINE) and _near(busy, BUSY), (online, busy)
        assert int(await page.get_attribute("#occupancy-chart", "data-points") or 0) >= 2
        assert await page.locator("#occupancy-chart circle.point").count() >= 2

        # Act as a user: carol joins, sets a status and types; alice, a plain WebSocket client, sees it.
        await page.fill("#act-token", stack.token(carol_id))
        await page.click("#act-connect")
        await page.wait_for_selector(f'#act-state[data-state="open"][data-user="{carol_id}"]')
        await page.click("#act-join")  # the selected channel
        await eventually(lambda: carol_id in alice.members(channel))
        await page.select_option("#act-status", "dnd")
        await page.fill("#act-status-text", "Focus")
        await page.click("#act-set-status")
        await eventually(lambda: _member(alice, channel, carol_id, status="dnd", status_text="Focus"))
        await page.click("#act-typing")
        await eventually(lambda: carol_id in alice.typing(channel))
        await page.wait_for_selector(f'#members tr[data-user="{carol_id}"][data-status="dnd"]')
        assert await page.get_attribute("#occupancy-chart", "data-points") is not None
        image = await screenshot(page, stack.logs, "dashboard-act-as")
        dnd = await pixel_at_centre(page, image, f'#members tr[data-user="{carol_id}"] .status-dot')
        assert _near(dnd, DND), dnd
        await page.click("#act-leave")
        await eventually(lambda: carol_id not in alice.members(channel))
        await page.wait_for_selector(f'#members tr[data-user="{carol_id}"]', state="detached")

        # With the service key: bob's status set on his behalf, then bob forced offline.
        await page.fill("#svc-user", bob_id)
        await page.select_option("#svc-status", "dnd")
        await page.fill("#svc-status-text", "Set by the backend")
        await page.click("#svc-set-status")
        await eventually(lambda: _member(alice, channel, bob_id, status="dnd", status_text="Set by the backend"))
        await page.wait_for_selector(f'#members tr[data-user="{bob_id}"][data-status="dnd"]')
        await page.click("#svc-offline")
        await eventually(lambda: bob_id not in alice.members(channel))
        await page.wait_for_selector(f'#members tr[data-user="{bob_id}"]', state="detached")
        await eventually(lambda: bob._ws.close_code == 4409)
        await screenshot(page, stack.logs, "dashboard-service-acts")
        assert not await page.locator('#log li[data-kind="error"]').count()
        assert errors == []


def test_without_chromium_browser_tests_fail_under_ci_and_skip_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(browser_module, "CHROMIUM", browser_module.Path("/nonexistent/chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        browser_module.require_chromium()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        browser_module.require_chromium()


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def _member(client: Client, channel: str, user: str, **fields: Any) -> bool:
    member = client.members(channel).get(user)
    return member is not None and all(member[k] == v for k, v in fields.items())

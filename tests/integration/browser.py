"""Headless Chromium (Debian's `chromium`, never a Playwright download) driven by Playwright, and
checks of the screenshots it takes.

`make test` installs chromium when /usr/bin/chromium is missing; a run without it skips the browser
tests, except under CI=true, where it fails them.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing: `make test` installs it (apt-get install -y chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@contextlib.asynccontextmanager
async def opened_page(browser: Browser, permissions: list[str] | None = None) -> AsyncIterator[tuple[Page, list[str]]]:
    """A page in a fresh context (its own sessionStorage) and the errors its scripts raise."""
    context = await browser.new_context(viewport=VIEWPORT, permissions=permissions)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    # Chromium asks every origin for a favicon; the edge has none, which is no error of the page.
    await page.route("**/favicon.ico", lambda route: route.fulfill(status=204))
    try:
        yield page, errors
    finally:
        await context.close()


def screenshots_dir(logs: Path) -> Path:
    path = logs / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def screenshot(page: Page, logs: Path, name: str) -> Image.Image:
    """A full-page screenshot saved under the logs dir, decoded, and checked to show a page drawn at the
    viewport's width at least, with more than a handful of colours (a blank or broken page has a few)."""
    png = await page.screenshot(full_page=True)
    (screenshots_dir(logs) / f"{name}.png").write_bytes(png)
    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.width == VIEWPORT["width"] and image.height >= VIEWPORT["height"], image.size
    colours = image.getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 30, f"{name}: {len(colours)} colours, a blank page"
    return image


async def pixel_at_centre(page: Page, image: Image.Image, selector: str) -> tuple[int, int, int]:
    """The colour of the full-page screenshot `image` at the centre of the element `selector`."""
    box = await page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not drawn"
    scroll = await page.evaluate("[window.scrollX, window.scrollY]")
    x, y = box["x"] + scroll[0] + box["width"] / 2, box["y"] + scroll[1] + box["height"] / 2
    pixel = image.getpixel((int(x), int(y)))
    assert isinstance(pixel, tuple)
    return pixel[0], pixel[1], pixel[2]

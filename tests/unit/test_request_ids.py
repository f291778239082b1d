"""The request-id middleware and log filter, on a small Starlette app (no broker)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from services import request_ids
from services.request_ids import RequestIdFilter, RequestIds, sound

log = logging.getLogger("test.request_ids")


async def echo(request: Request) -> Response:
    log.warning("handling")
    return PlainTextResponse(request_ids.current() or "")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Route("/", echo)], middleware=[Middleware(RequestIds)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://edge") as client:
        yield client


async def test_a_sound_request_id_is_kept_and_echoed(client: httpx.AsyncClient) -> None:
    answer = await client.get("/", headers={"X-Request-Id": "req-42.a/b"})
    assert answer.headers["X-Request-Id"] == "req-42.a/b"
    assert answer.text == "req-42.a/b"


@pytest.mark.parametrize("given", [b"", b"a" * 129, b"two words", "é".encode()])
async def test_an_unsound_request_id_is_replaced(client: httpx.AsyncClient, given: bytes) -> None:
    answer = await client.get("/", headers={"X-Request-Id": given})
    generated = answer.headers["X-Request-Id"]
    assert generated.encode() != given and sound(generated) == generated and answer.text == generated


async def test_each_request_without_an_id_gets_a_new_one(client: httpx.AsyncClient) -> None:
    first, second = (await client.get("/")).headers["X-Request-Id"], (await client.get("/")).headers["X-Request-Id"]
    assert len(first) == 32 and first != second


def test_the_id_bounds() -> None:
    assert sound("x" * 128) == "x" * 128
    assert sound("x" * 129) is None
    assert sound("line\nbreak") is None
    assert sound(None) is None


async def test_a_websocket_gets_its_id_in_the_handler_and_on_the_handshake() -> None:
    seen: list[str | None] = []
    sent: list[Message] = []

    async def socket(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(request_ids.current())
        await send({"type": "websocket.accept"})  # no headers of its own

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"x-request-id", b"ws-1")]}
    await RequestIds(socket)(scope, receive, send)
    assert seen == ["ws-1"]
    assert (b"x-request-id", b"ws-1") in sent[0]["headers"]


async def test_records_written_during_a_request_carry_its_id(client: httpx.AsyncClient) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(RequestIdFilter())
    log.addHandler(handler)
    try:
        # In a task of its own, as uvicorn runs each request: the id stays in that task's context.
        await asyncio.create_task(client.get("/", headers={"X-Request-Id": "logged-7"}))
        log.warning("outside a request")
    finally:
        log.removeHandler(handler)
    inside, outside = records
    assert inside.request_id == "logged-7"  # type: ignore[attr-defined]
    assert not hasattr(outside, "request_id")

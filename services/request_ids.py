"""Request ids: each HTTP request and WebSocket gets one, from its `X-Request-Id` header when that is
a sound id (1 to 128 visible ASCII characters), else a new one. It is echoed on the response and put on
every log record written while the request is handled (`services.logs`)."""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-Id"
_SOUND = re.compile(r"[!-~]{1,128}")  # visible ASCII: nothing that could forge a log line or a header

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def current() -> str | None:
    """The id of the request being handled, None outside a request."""
    return _current.get()


def sound(candidate: str | None) -> str | None:
    return candidate if candidate is not None and _SOUND.fullmatch(candidate) else None


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = sound(Headers(scope=scope).get(HEADER)) or uuid.uuid4().hex
        # Not reset afterwards: each request runs in a task of its own, whose context ends with it, and
        # Starlette's outermost error handler logs an unhandled exception after this call has returned.
        _current.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message.setdefault("headers", [])
                MutableHeaders(scope=message).append(HEADER, request_id)
            await send(message)

        await self.app(scope, receive, send_with_id)


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on the record as `request_id` (on none outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (request_id := current()) is not None:
            record.request_id = request_id
        return True

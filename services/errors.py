"""The edge's one exception type and its mapping to HTTP answers and WebSocket frames.

Every failure a client sees is an `ApiError` carrying a code from `schemas.errors`; the status,
close code and retriable flag come from the catalogue, never from the raising site.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas.errors import ErrorCode, error
from services import metrics

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


class ApiError(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        self.error: ErrorCode = error(code)
        self.message = message or self.error.description
        super().__init__(f"{code}: {self.message}")

    def body(self) -> dict[str, Any]:
        return {"code": self.error.code, "message": self.message, "retriable": self.error.retriable}

    def response(self, headers: Mapping[str, str] | None = None) -> JSONResponse:
        headers = dict(headers or {})
        if self.error.http_status == 503:
            headers["Retry-After"] = str(RETRY_AFTER_S)
        if self.error.http_status == 426:
            headers["Upgrade"] = "websocket"
        return JSONResponse({"error": self.body()}, status_code=self.error.http_status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    metrics.ERRORS.labels(exc.error.code).inc()
    return exc.response()


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "route.not_found", 405: "route.method_not_allowed"}.get(exc.status_code, "request.invalid")
    return ApiError(code).response(exc.headers)  # keeps `Allow` on a 405


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ApiError("server.internal").response()


EXCEPTION_HANDLERS = {ApiError: api_error, HTTPException: http_error, Exception: internal_error}

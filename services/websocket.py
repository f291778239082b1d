"""The WebSocket endpoint `/realtime/ws` and its handshake.

The token comes in the `token` query parameter or an `Authorization: Bearer` header. The handshake checks the
page's `Origin` against `websocket_origins` (CORS does not cover WebSockets), the token, the user's connection
limit, and the connect parameters `device` and `metadata`; a refusal is a real HTTP answer where the server
supports it, else an `error` frame and a close. An accepted socket runs one `Session` (services/session.py) per
connected device, or an `ObserverSession` (services/observer.py) for a service key.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.websockets import WebSocket

from services.auth import bearer_token
from services.edge import Edge
from services.errors import ApiError
from services.observer import ObserverSession
from services.protocol import check_device, check_metadata
from services.session import Session


class _NoTracebackForBadUtf8(logging.Filter):
    """uvicorn closes a socket whose text frame is not UTF-8 with 1007 and logs it with a traceback;
    the fault is the client's, so the log keeps the line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "Invalid UTF-8 sequence received from client.":
            record.exc_info = None
        return True


logging.getLogger("uvicorn.error").addFilter(_NoTracebackForBadUtf8())


async def presence_socket(websocket: WebSocket) -> None:
    edge: Edge = websocket.app.state.edge
    token = websocket.query_params.get("token") or bearer_token(websocket.headers.get("authorization"))
    try:
        _check_origin(websocket, edge)
        principal = await edge.auth.authenticate(token)
        if edge.connections_of(principal.user_id) >= edge.settings.max_connections_per_user:
            raise ApiError("limit.connections_per_user")
        device, metadata = _connect_params(websocket, edge)
    except ApiError as exc:
        await _deny(websocket, exc)
        return
    await websocket.accept()
    session = ObserverSession if principal.is_service else Session
    await session(websocket, principal, edge, device, metadata).run()


def _check_origin(websocket: WebSocket, edge: Edge) -> None:
    # CORS does not apply to WebSockets: a page on any site could open one with the user's cookies.
    allowed = edge.settings.websocket_origins
    origin = websocket.headers.get("origin")
    # A page of the edge itself (the dashboard) is same-origin: never a cross-site request.
    own = {f"{scheme}://{websocket.headers.get('host')}" for scheme in ("http", "https")}
    if allowed and origin is not None and origin not in allowed and origin not in own:
        raise ApiError("auth.origin_forbidden", f"origin {origin!r} is not allowed")


def _connect_params(websocket: WebSocket, edge: Edge) -> tuple[str | None, dict[str, Any] | None]:
    """`device` (a name like ios or web) and `metadata` (URL-encoded JSON) set at connect."""
    device = websocket.query_params.get("device")
    raw = websocket.query_params.get("metadata")
    metadata = None
    if raw is not None:
        try:
            metadata = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError("request.malformed_json", "`metadata` is not valid JSON") from exc
        check_metadata(metadata, edge.limits.max_metadata_bytes)
    return (check_device(device) if device is not None else None), metadata


async def _deny(websocket: WebSocket, exc: ApiError) -> None:
    # Refuse the upgrade with a real 401 where the server supports it, else close with 4401.
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(exc.response())
        return
    await websocket.accept()
    await websocket.send_text(orjson.dumps({"type": "error", **exc.body()}).decode())
    await websocket.close(code=exc.error.ws_close or 1008)

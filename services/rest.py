"""REST endpoints: channel presence reads, presence updates, health and metrics."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas.events import PresenceUpdated
from services import metrics, representation
from services.auth import Principal, authenticate, bearer_token
from services.edge import Edge
from services.errors import ApiError
from services.event_log import new_id, now_ms
from services.protocol import check_channel, parse_update_body


def _edge(request: Request) -> Edge:
    return request.app.state.edge


def _principal(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization")) or request.query_params.get("token")
    return authenticate(token, _edge(request).settings.jwt_secret)


async def channel_presence(request: Request) -> Response:
    principal = _principal(request)
    channel = check_channel(request.path_params["channel"])
    principal.require_channel(channel)
    edge = _edge(request)
    if not edge.read_model.ready:
        raise ApiError("service.not_ready")
    return JSONResponse(representation.snapshot(edge.read_model.view(channel)))


async def update_presence(request: Request) -> Response:
    principal = _principal(request)
    edge = _edge(request)
    max_bytes = edge.settings.max_body_bytes
    if int(request.headers.get("content-length") or 0) > max_bytes:
        raise ApiError("request.too_large", f"the body exceeds {max_bytes} bytes")
    update = parse_update_body(await request.body(), edge.limits, principal.user_id, max_bytes)
    event = PresenceUpdated(
        event_id=new_id(),
        user_id=principal.user_id,
        connection_id=f"rest:{edge.settings.edge_id}",
        edge_id=edge.settings.edge_id,
        at=now_ms(),
        status=update.status,
        metadata=update.metadata,
    )
    await edge.log.write(event)
    return JSONResponse(
        {
            "event_id": event.event_id,
            "user_id": event.user_id,
            "status": event.status,
            "accepted_at": event.at,
            "accepted_at_iso": representation.iso(event.at),
        }
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if not _edge(request).read_model.ready:
        raise ApiError("service.not_ready")
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

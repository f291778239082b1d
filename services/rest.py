"""REST endpoints: channel and user presence reads, bulk presence, the channels list, presence updates,
erasure, health and metrics."""

from __future__ import annotations

import asyncio
import heapq
import uuid
from typing import Any

from aiokafka.errors import KafkaError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas.events import UserErased
from services import history, metrics, representation, timeline_reader, visibility
from services.auth import Principal, bearer_token
from services.edge import Edge
from services.errors import ApiError
from services.event_log import new_id, now_ms
from services.instants import instant
from services.protocol import MAX_QUERY_BYTES, check_channel, parse_query_body, parse_update_body
from services.updates import update_event

MAX_PAGE = 1000
HISTORY_TIMEOUT_S = 30.0
# History reads open their own Kafka consumers: a few at a time, so a burst of them cannot crowd out
# the edge's writes and reads on the broker.
HISTORY_READS = asyncio.Semaphore(4)
# Idempotency keys map to event ids under this namespace; the core drops a repeated event id.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f6c3a52-8e0e-4d6e-9a43-1b0f5f0c9b1e")


def edge_of(request: Request) -> Edge:
    edge: Edge = request.app.state.edge
    return edge


async def principal_of(request: Request) -> Principal:
    token = bearer_token(request.headers.get("authorization")) or request.query_params.get("token")
    return await edge_of(request).auth.authenticate(token)


def _ready(edge: Edge) -> None:
    if not edge.read_model.ready:
        raise ApiError("service.not_ready")


def _flag(request: Request, name: str, default: bool) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    if value not in ("true", "false", "1", "0"):
        raise ApiError("request.invalid", f"`{name}` must be true or false")
    return value in ("true", "1")


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "100")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE:  # isdigit alone takes "²", "٣"
        raise ApiError("request.invalid", f"`limit` must be an integer from 1 to {MAX_PAGE}")
    return int(raw)


def _cursor(request: Request) -> str:
    """The cursor is the last user (or channel) id of the previous page; pages follow id order."""
    return request.query_params.get("cursor", "")


async def channel_presence(request: Request) -> Response:
    principal = await principal_of(request)
    channel = check_channel(request.path_params["channel"])
    principal.require_channel(channel)
    edge = edge_of(request)
    # Every parameter is checked, also those that `count_only` makes moot: a bad one is an error either way.
    count_only = _flag(request, "count_only", False)
    include_metadata = _flag(request, "include_metadata", True)
    after, limit, status = _cursor(request), _limit(request), request.query_params.get("status")
    at = request.query_params.get("at")
    body: dict[str, Any]
    if at is None:
        _ready(edge)
        view = edge.read_model.view(channel)
        body = {"channel": channel, "seq": view.seq, "occupancy": len(view.members), "typing": list(view.typing)}
        members = view.members
    else:
        past = await _channel_at(edge, channel, at)
        members = past.state.members if past.state is not None else ()
        body = representation.channel_at(past)
    if count_only:
        return JSONResponse(body)
    matching = [m for m in members if m.user_id > after and (status is None or m.status == status)]
    page = matching[:limit]
    next_cursor = None
    if len(matching) > limit:
        next_cursor = page[-1].user_id
    body["members"] = [representation.member(m, include_metadata) for m in page]
    body["next_cursor"] = next_cursor
    return JSONResponse(body)


async def _channel_at(edge: Edge, channel: str, at: str) -> history.ChannelAt:
    try:
        when = instant(at, "at")
    except ValueError as exc:
        raise ApiError("request.invalid", str(exc)) from None
    try:
        async with asyncio.timeout(HISTORY_TIMEOUT_S), HISTORY_READS:
            return await history.channel_at(edge.settings.bootstrap_servers, edge.settings.partitions, channel, when)
    except (KafkaError, TimeoutError) as exc:
        raise ApiError("service.broker_unavailable", f"could not read the channel's history: {exc!r}") from None


async def user_presence(request: Request) -> Response:
    principal = await principal_of(request)
    edge = edge_of(request)
    _ready(edge)
    # A user the caller may not read is answered as an unknown one (services/visibility.py).
    view = visibility.readable_view(principal, request.path_params["user_id"], edge.read_model)
    if view is None:
        raise ApiError("user.not_found")
    return JSONResponse(view)


async def presence_query(request: Request) -> Response:
    """Bulk presence: the views of up to 500 users; unknown and unreadable ones alike in `not_found`."""
    principal = await principal_of(request)
    edge = edge_of(request)
    if int(request.headers.get("content-length") or 0) > MAX_QUERY_BYTES:
        raise ApiError("request.too_large", f"the body exceeds {MAX_QUERY_BYTES} bytes")
    user_ids = parse_query_body(await request.body())
    _ready(edge)
    users, not_found = [], []
    for user_id in user_ids:
        view = visibility.readable_view(principal, user_id, edge.read_model)
        if view is None:
            not_found.append(user_id)
        else:
            users.append(view)
    return JSONResponse({"users": users, "not_found": not_found})


async def channels_list(request: Request) -> Response:
    """The channels with members that the caller's token allows, by channel id, a page at a time."""
    principal = await principal_of(request)
    edge = edge_of(request)
    after, limit = _cursor(request), _limit(request)
    _ready(edge)
    # The smallest ids after the cursor: one pass over the channels, no sort of them all.
    page = heapq.nsmallest(limit + 1, (state for state in edge.read_model.channels()
                                       if state.channel > after and principal.may_access(state.channel)),
                           key=lambda state: state.channel)
    next_cursor = page[limit - 1].channel if len(page) > limit else None
    return JSONResponse({
        "channels": [{"channel": s.channel, "occupancy": len(s.members), "seq": s.seq, "typing": list(s.typing)}
                     for s in page[:limit]],
        "next_cursor": next_cursor,
    })


async def user_timeline(request: Request) -> Response:
    """The caller's own sessions and status intervals, folded from its partition of the log."""
    principal = await principal_of(request)
    user_id = request.path_params["user_id"]
    if user_id != principal.user_id:
        raise ApiError("history.forbidden_user")
    query = request.query_params
    try:
        from_ms, to_ms = timeline_reader.window(query.get("from"), query.get("to"), now_ms())
    except ValueError as exc:
        raise ApiError("request.invalid", str(exc)) from None
    settings = edge_of(request).settings
    try:
        async with HISTORY_READS:
            timeline = await timeline_reader.user_timeline(settings.bootstrap_servers, settings.partitions, user_id,
                                                           from_ms, to_ms)
    except timeline_reader.LogUnavailable as exc:
        raise ApiError("service.broker_unavailable", f"could not read the user's history: {exc}") from None
    if timeline.erased_at is not None and not timeline.sessions and not timeline.statuses:
        raise ApiError("user.not_found", "the user was erased and has not come back")
    return JSONResponse(timeline_reader.as_json(timeline))


async def update_presence(request: Request) -> Response:
    principal = await principal_of(request)
    principal.require_user()
    return await _write_update(request, principal, principal.user_id)


async def set_user_presence(request: Request) -> Response:
    """A service sets a user's presence on its behalf: the event names the service."""
    principal = await principal_of(request)
    principal.require_service()
    return await _write_update(request, principal, request.path_params["user_id"])


async def _write_update(request: Request, principal: Principal, user_id: str) -> Response:
    edge = edge_of(request)
    max_bytes = edge.settings.max_body_bytes
    if int(request.headers.get("content-length") or 0) > max_bytes:
        raise ApiError("request.too_large", f"the body exceeds {max_bytes} bytes")
    update = parse_update_body(await request.body(), edge.limits, user_id, max_bytes)
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 200:
        raise ApiError("request.invalid", "`Idempotency-Key` must be 1 to 200 characters")
    event_id = uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{user_id}\n{key}").hex if key else new_id()
    event = update_event(
        update, edge.policy, event_id=event_id, user_id=user_id, service=principal.service,
        connection_id=f"rest:{edge.settings.edge_id}", edge_id=edge.settings.edge_id, at=now_ms(),
    )
    await edge.log.write(event)
    body: dict[str, Any] = {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "status": event.status,
        "accepted_at": event.at,
        "accepted_at_iso": representation.iso(event.at),
    }
    if _flag(request, "wait", False):
        try:
            view = await edge.read_model.wait_for_user_event(user_id, event_id, edge.settings.write_timeout_s)
        except TimeoutError as exc:
            raise ApiError("service.processor_lagging") from exc
        body["presence"] = representation.user(view, visibility.visible_channels(
            principal, edge.read_model.channels_of(user_id)))
    return JSONResponse(body)


async def user(request: Request) -> Response:
    """One route for every method, so a 405 names them all in `Allow`."""
    handle = {"DELETE": erase_user, "POST": set_user_presence}.get(request.method, user_presence)
    return await handle(request)


async def erase_user(request: Request) -> Response:
    """The caller asks to be erased: a `user.erased` in the log, answered 200 once this edge no longer
    shows the user, or 202 if the processor has not applied it within the write timeout (it will: the
    log has it; every edge then closes the user's sockets; docs/history.md#erasure)."""
    principal = await principal_of(request)
    principal.require_user()
    if request.path_params["user_id"] != principal.user_id:
        raise ApiError("presence.forbidden_user", "a user may erase only itself")
    edge = edge_of(request)
    event = UserErased(event_id=new_id(), user_id=principal.user_id, connection_id=f"rest:{edge.settings.edge_id}",
                       edge_id=edge.settings.edge_id, at=now_ms())
    await edge.log.write(event)
    body = {"event_id": event.event_id, "user_id": event.user_id, "erased_at": event.at,
            "erased_at_iso": representation.iso(event.at)}
    try:
        await edge.read_model.wait_for_user_gone(principal.user_id, edge.settings.write_timeout_s)
    except TimeoutError:
        return JSONResponse(body, status_code=202)
    return JSONResponse(body)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    edge = edge_of(request)
    _ready(edge)
    if unanswered := edge.readiness.unanswered(now_ms()):
        raise ApiError("service.not_ready", f"the processor has not answered probes of partitions {unanswered}")
    return JSONResponse({"status": "ready"})


async def metrics_endpoint(request: Request) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

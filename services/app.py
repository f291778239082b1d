"""The edge application: routes, error handlers and lifespan in one place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from services import admin, request_ids, rest, service_acts, web
from services.edge import running_edge
from services.errors import EXCEPTION_HANDLERS, ApiError
from services.openapi import openapi_document
from services.settings import EdgeSettings
from services.websocket import presence_socket


async def websocket_over_http(request: Request) -> Response:
    raise ApiError("route.upgrade_required")


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document(request.app.state.edge.limits))


def create_app(settings: EdgeSettings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_edge(settings) as edge:
            app.state.edge = edge
            yield

    routes = [
        Route("/realtime/channels/{channel}/presence", rest.channel_presence, methods=["GET"]),
        Route("/realtime/users/{user_id}/presence", rest.user, methods=["GET", "DELETE", "POST"]),
        Route("/realtime/users/{user_id}/presence/offline", service_acts.force_offline, methods=["POST"]),
        Route("/realtime/users/{user_id}/presence/timeline", rest.user_timeline, methods=["GET"]),
        Route("/realtime/presence/update", rest.update_presence, methods=["POST"]),
        Route("/realtime/presence/query", rest.presence_query, methods=["POST"]),
        Route("/realtime/channels", rest.channels_list, methods=["GET"]),
        WebSocketRoute("/realtime/ws", presence_socket),
        Route("/realtime/ws", websocket_over_http, methods=["GET"]),
        Route("/healthz", rest.healthz, methods=["GET"]),
        Route("/readyz", rest.readyz, methods=["GET"]),
        *admin.main_port_routes(settings),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/realtime/client.js", web.client_js, methods=["GET"]),
        Route("/dashboard", web.dashboard, methods=["GET"]),
        Route("/dashboard/{name}", web.dashboard_asset, methods=["GET"]),
    ]
    middleware = [Middleware(request_ids.RequestIds)]  # outermost: CORS preflights carry an id too
    if settings.cors_origins:
        middleware.append(Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", request_ids.HEADER],
            expose_headers=[request_ids.HEADER],
            max_age=600,
        ))
    return Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)

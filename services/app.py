"""The edge application: routes, error handlers and lifespan in one place."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from services import rest
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
        Route("/realtime/users/{user_id}/presence", rest.user, methods=["GET", "DELETE"]),
        Route("/realtime/users/{user_id}/presence/timeline", rest.user_timeline, methods=["GET"]),
        Route("/realtime/presence/update", rest.update_presence, methods=["POST"]),
        WebSocketRoute("/realtime/ws", presence_socket),
        Route("/realtime/ws", websocket_over_http, methods=["GET"]),
        Route("/healthz", rest.healthz, methods=["GET"]),
        Route("/readyz", rest.readyz, methods=["GET"]),
        Route("/metrics", rest.metrics_endpoint, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)

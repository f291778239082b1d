"""Where the edge serves `/metrics`: on an admin port of its own (`PRESENCE_ADMIN_PORT`, a second
uvicorn server in the same process, started by `presence edge`), else on the main port behind
`PRESENCE_METRICS_TOKEN`. With neither, a development edge serves them openly on the main port and a
production edge does not serve them at all: anyone could read them there."""

from __future__ import annotations

import hmac
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.auth import bearer_token
from services.errors import EXCEPTION_HANDLERS, ApiError
from services.rest import metrics_endpoint
from services.settings import EdgeSettings

log = logging.getLogger(__name__)


def token_guarded(token: str) -> Route:
    async def guarded(request: Request) -> Response:
        given = bearer_token(request.headers.get("authorization"))
        if given is None:
            raise ApiError("auth.missing_token", "/metrics takes `Authorization: Bearer <PRESENCE_METRICS_TOKEN>`")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError("auth.invalid_token", "not the metrics token")
        return await metrics_endpoint(request)

    return Route("/metrics", guarded, methods=["GET"])


def main_port_routes(settings: EdgeSettings) -> list[Route]:
    """`/metrics` on the main port, as far as the settings allow it there."""
    if settings.admin_port:
        return []
    if settings.metrics_token:
        return [token_guarded(settings.metrics_token)]
    if settings.dev_mode:
        return [Route("/metrics", metrics_endpoint, methods=["GET"])]
    log.warning("/metrics is not served: set PRESENCE_ADMIN_PORT or PRESENCE_METRICS_TOKEN")
    return []


def create_admin_app() -> Starlette:
    return Starlette(routes=[Route("/metrics", metrics_endpoint, methods=["GET"])],
                     exception_handlers=EXCEPTION_HANDLERS)

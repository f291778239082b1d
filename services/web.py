"""The browser files the edge serves: the JavaScript client (`/realtime/client.js`) and the dashboard.

They live in services/static/ (package data, so an installed edge serves them too) and are read
once at import. Browsers revalidate them on each load (`no-cache` with an ETag), so a new edge's
files are used at once and an unchanged file costs a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from services.errors import ApiError

STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8"}
# The dashboard holds a service key: its page loads and talks to this edge only, and no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                               "form-action 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, name: str) -> StaticFile:
        body = (STATIC / name).read_bytes()
        return cls(body, TYPES[Path(name).suffix], f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "ETag": self.etag, **PAGE_HEADERS}
        if request.headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


CLIENT = StaticFile.read("client.js")
DASHBOARD = StaticFile.read("dashboard.html")
DASHBOARD_ASSETS = {name: StaticFile.read(name) for name in ("dashboard.js", "dashboard.css")}


async def client_js(request: Request) -> Response:
    return CLIENT.response(request)


async def dashboard(request: Request) -> Response:
    return DASHBOARD.response(request)


async def dashboard_asset(request: Request) -> Response:
    asset = DASHBOARD_ASSETS.get(request.path_params["name"])
    if asset is None:
        raise ApiError("route.not_found")
    return asset.response(request)

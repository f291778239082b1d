"""Where /metrics is served, by the settings, and its token (no broker: the routes alone)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from services.admin import create_admin_app, main_port_routes, token_guarded
from services.errors import EXCEPTION_HANDLERS
from services.settings import EdgeSettings


def _client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://edge")


async def test_the_metrics_token_is_required_and_checked() -> None:
    app = Starlette(routes=[token_guarded("metrics-secret")], exception_handlers=EXCEPTION_HANDLERS)
    async with _client(app) as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer metrics-secre"})
        right = await http.get("/metrics", headers={"Authorization": "Bearer metrics-secret"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "auth.missing_token")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "auth.invalid_token")
    assert right.status_code == 200 and "presence_ws_connections" in right.text


async def test_the_admin_app_serves_metrics_openly() -> None:
    async with _client(create_admin_app()) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")


def test_the_main_port_serves_metrics_as_the_settings_say() -> None:
    def paths(**settings: object) -> list[str]:
        return [route.path for route in main_port_routes(EdgeSettings(**settings))]  # type: ignore[arg-type]

    assert paths(admin_port=9100, metrics_token="t", dev_mode=True) == []  # the admin port has them
    assert paths(metrics_token="t") == ["/metrics"]
    assert paths(dev_mode=True) == ["/metrics"]
    assert paths(dev_mode=False) == []  # production without a token: nobody may read them there

"""Browser and operations against the real stack: CORS by allowlist, request ids, JSON logs, the edge's
/metrics on an admin port or behind a token, and the worker's own metrics."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from services.broker import free_port
from tests.integration.client import Client
from tests.integration.frames import user
from tests.integration.stack import ALLOWED_ORIGIN, CORS_ORIGIN, PARTITIONS, Stack, eventually, start_edge, stop_edge

METRICS_TOKEN = "metrics-" + "m" * 24
PREFLIGHT = {"Access-Control-Request-Method": "POST",
             "Access-Control-Request-Headers": "authorization, content-type, idempotency-key, x-request-id"}


async def test_a_preflight_from_an_allowed_origin_is_answered(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.options("/realtime/presence/update", headers={"Origin": CORS_ORIGIN, **PREFLIGHT})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in answer.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-request-id"} <= allowed


async def test_a_preflight_from_another_origin_gets_no_cors_headers(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.options("/realtime/presence/update",
                                    headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert answer.status_code == 400
    assert "access-control-allow-origin" not in answer.headers


async def test_a_cross_origin_read_carries_the_cors_headers_only_for_allowed_origins(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.token(user('cors'))}"}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        allowed = await http.get("/realtime/channels/cors-room/presence", headers={"Origin": CORS_ORIGIN, **auth})
        foreign = await http.get("/realtime/channels/cors-room/presence",
                                 headers={"Origin": "https://evil.example", **auth})
    assert allowed.status_code == 200 and foreign.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == CORS_ORIGIN
    assert allowed.headers["access-control-expose-headers"] == "X-Request-Id"
    assert "access-control-allow-origin" not in foreign.headers


async def test_a_cors_origin_may_open_websockets_and_the_welcome_names_the_request(stack: Stack) -> None:
    url = f"{stack.ws_url}?token={stack.token(user('cors-ws'))}"
    for origin in (CORS_ORIGIN, ALLOWED_ORIGIN):
        async with websockets.connect(url, origin=origin, additional_headers={"X-Request-Id": "ws-42"}) as ws:
            welcome = orjson.loads(await ws.recv())
            assert welcome["type"] == "welcome" and welcome["request_id"] == "ws-42"
            assert ws.response.headers["X-Request-Id"] == "ws-42"


async def test_every_answer_echoes_or_makes_a_request_id(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        given = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
        made = await http.get("/healthz", headers={"X-Request-Id": "not\tsound"})
        error = await http.get("/no/such/route", headers={"X-Request-Id": "lost-1"})
    assert given.headers["X-Request-Id"] == "abc-123"
    assert made.headers["X-Request-Id"] not in ("", "not\tsound")
    assert error.status_code == 404 and error.headers["X-Request-Id"] == "lost-1"


# The worker's metrics (PRESENCE_WORKER_METRICS_PORT, one port per worker: tests/integration/stack.py).

async def _worker_samples(stack: Stack) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    async with httpx.AsyncClient(timeout=5) as http:
        for worker, port in zip(stack.workers, stack.worker_metrics_ports, strict=True):
            if worker.poll() is None:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                families = text_string_to_metric_families(text)
                samples += [(s.name, s.labels, s.value) for family in families for s in family.samples]
    return samples


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(value for sample, of, value in samples if sample == name and labels.items() <= of.items())


async def test_the_worker_counts_folds_lag_sweeps_and_snapshots(stack: Stack, connect, channel: str) -> None:
    before = await _worker_samples(stack)
    client: Client = await connect(user("metered"))
    await client.join(channel)
    await client.send(type="leave", channel=channel)  # the empty channel expires: a sweeper event
    counts = [("presence_worker_events_folded_total", {"type": "channel.joined"}),
              ("presence_worker_events_folded_total", {"type": "channel.left"}),
              ("presence_worker_changes_emitted_total", {}),
              ("presence_worker_sweeper_events_total", {"kind": "channel.expired"}),
              ("presence_worker_sweep_seconds_count", {}),
              ("presence_worker_snapshots_written_total", {})]

    async def counted() -> list[tuple[str, dict[str, str], float]] | None:
        now = await _worker_samples(stack)
        grew = all(_total(now, name, **labels) > _total(before, name, **labels) for name, labels in counts)
        return now if grew else None

    now = await eventually(counted, timeout_s=30, interval_s=0.5)
    lags = {int(labels["partition"]): value for name, labels, value in now if name == "presence_worker_consumer_lag"}
    assert set(lags) == set(range(PARTITIONS)) and all(lag >= 0 for lag in lags.values())


# Edges of their own: one with an admin port, one with a metrics token and JSON logs.
async def test_the_admin_port_serves_the_edge_metrics_and_the_main_port_does_not(stack: Stack) -> None:
    port, admin_port = free_port(), free_port()
    edge = await start_edge(stack, "edge-ops-admin", port, "edge-ops-admin", PRESENCE_ADMIN_PORT=str(admin_port))
    try:
        async with httpx.AsyncClient() as http:
            admin = await http.get(f"http://127.0.0.1:{admin_port}/metrics")
            main = await http.get(f"http://127.0.0.1:{port}/metrics")
        assert admin.status_code == 200 and "presence_ws_connections" in admin.text
        assert main.status_code == 404 and main.json()["error"]["code"] == "route.not_found"
        edge.send_signal(signal.SIGINT)  # one Ctrl-C stops both servers
        edge.wait(timeout=10)
    finally:
        stop_edge(edge)
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as http:
            await http.get(f"http://127.0.0.1:{admin_port}/metrics")


JsonEdge = tuple[int, subprocess.Popen[bytes], Path]


@pytest.fixture(scope="module")
async def json_edge(stack: Stack) -> AsyncIterator[JsonEdge]:
    port, name = free_port(), "edge-ops-json"
    log = stack.logs / f"{name}.log"
    log.unlink(missing_ok=True)
    edge = await start_edge(stack, name, port, name, PRESENCE_LOG_FORMAT="json", PRESENCE_LOG_LEVEL="info",
                            PRESENCE_METRICS_TOKEN=METRICS_TOKEN)
    yield port, edge, log
    stop_edge(edge)


async def test_the_main_port_serves_metrics_only_with_the_token(json_edge: JsonEdge) -> None:
    base = f"http://127.0.0.1:{json_edge[0]}"
    async with httpx.AsyncClient(base_url=base) as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        right = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "auth.missing_token")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "auth.invalid_token")
    assert right.status_code == 200 and "presence_ws_connections" in right.text


async def test_json_logs_carry_request_ids_and_no_tokens(stack: Stack, json_edge: JsonEdge) -> None:
    port, edge, log = json_edge
    request_id = f"ops-{uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answer = await http.get("/healthz", headers={"X-Request-Id": request_id})
    assert answer.headers["X-Request-Id"] == request_id
    token = stack.token(user("logged"))
    client = Client(f"ws://127.0.0.1:{port}/realtime/ws", token)
    await client.connect()
    await client.close()

    def lines() -> list[dict[str, object]]:
        return [json.loads(line) for line in log.read_text().splitlines()]  # every line is a JSON object

    def logged() -> bool:
        found = [line for line in lines() if line.get("request_id") == request_id]
        return any("GET /healthz" in str(line["message"]) for line in found)

    await eventually(logged, timeout_s=10)
    await eventually(lambda: any("WebSocket /realtime/ws?token=[redacted]" in str(line["message"]) for line in lines()))
    assert token not in log.read_text()
    stop_edge(edge)  # what it logs while stopping is JSON too
    assert all(line["level"] and line["logger"] for line in lines())

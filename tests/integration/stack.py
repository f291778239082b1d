"""The stack under test: a broker (found or started), processor workers and an edge, as real processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from services.auth import mint_token, service_key
from services.broker import create_topics, free_port, throwaway_broker

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-" + "x" * 32
SERVICE_SECRETS = {"backend": "backend-secret-" + "y" * 16, "dashboard": "dashboard-secret-" + "z" * 16}
PARTITIONS = 4
TIMEOUT_S = 3.0
HEARTBEAT_S = 1.0
GRACE_S = 2.0
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = TIMEOUT_S  # /readyz fails as soon as a connection could time out unseen
CHANNEL_RETENTION_S = 4.0
SNAPSHOT_INTERVAL_S = 2.0
USER_RETENTION_S = 20.0
BATCH_ABOVE_MEMBERS = 4
ALLOWED_ORIGIN = "https://app.example"
CORS_ORIGIN = "https://console.example"  # may call the REST API from a browser, and open WebSockets
MAX_CHANNELS = 20
MAX_CONNECTIONS = 5


@dataclass(frozen=True)
class Broker:
    bootstrap: str
    idempotent_producer: bool  # Tansu refuses it


@contextlib.contextmanager
def kafka_broker() -> Iterator[Broker]:
    """`KAFKA_BOOTSTRAP_SERVERS` if set, else a broker of the project's own with a fresh log: Apache
    Kafka, or Tansu when `PRESENCE_BROKER=tansu`."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield Broker(os.environ["KAFKA_BOOTSTRAP_SERVERS"], idempotent_producer=True)
        return
    with tempfile.TemporaryDirectory(prefix="presence-test-kafka-") as data_dir, \
            throwaway_broker(os.environ.get("PRESENCE_BROKER", "kafka"), Path(data_dir)) as broker:
        yield Broker(broker.bootstrap, broker.idempotent_producer)


@dataclass
class Stack:
    bootstrap: str
    idempotent_producer: bool
    http_port: int = field(default_factory=free_port)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_metrics_ports: list[int] = field(default_factory=list)  # PRESENCE_WORKER_METRICS_PORT of each worker
    edge: subprocess.Popen[bytes] | None = None
    logs: Path = field(default_factory=lambda: Path(os.environ.get("PRESENCE_TEST_LOGS", "/tmp/presence-test-logs")))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.http_port}/realtime/ws"

    def token(self, user_id: str, channels: list[str] | None = None, ttl_s: int = 3600) -> str:
        return mint_token(SECRET, user_id, channels, ttl_s)

    def service_key(self, name: str = "backend") -> str:
        return service_key(name, SERVICE_SECRETS[name])

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PRESENCE_PARTITIONS": str(PARTITIONS),
            "PRESENCE_JWT_SECRET": SECRET,
            "PRESENCE_SERVICE_KEYS": ",".join(f"{name}={secret}" for name, secret in SERVICE_SECRETS.items()),
            "PRESENCE_HTTP_PORT": str(self.http_port),
            "PRESENCE_TIMEOUT_S": str(TIMEOUT_S),
            "PRESENCE_HEARTBEAT_S": str(HEARTBEAT_S),
            "PRESENCE_RECONNECT_GRACE_S": str(GRACE_S),
            "PRESENCE_SWEEP_INTERVAL_S": "0.2",
            "PRESENCE_SNAPSHOT_INTERVAL_S": str(SNAPSHOT_INTERVAL_S),
            "PRESENCE_PROBE_INTERVAL_S": str(PROBE_INTERVAL_S),
            "PRESENCE_PROBE_TIMEOUT_S": str(PROBE_TIMEOUT_S),
            "PRESENCE_CHANNEL_RETENTION_S": str(CHANNEL_RETENTION_S),
            "PRESENCE_USER_RETENTION_S": str(USER_RETENTION_S),
            "PRESENCE_SESSION_TIMEOUT_S": "6",
            "PRESENCE_DEV_MODE": "true",
            "PRESENCE_POLICY_FILE": str(Path(__file__).with_name("policy.json")),
            "PRESENCE_BATCH_ABOVE_MEMBERS": str(BATCH_ABOVE_MEMBERS),
            "PRESENCE_ALLOWED_ORIGINS": ALLOWED_ORIGIN,
            "PRESENCE_CORS_ORIGINS": CORS_ORIGIN,
            "PRESENCE_MAX_CHANNELS_PER_CONNECTION": str(MAX_CHANNELS),
            "PRESENCE_MAX_CONNECTIONS_PER_USER": str(MAX_CONNECTIONS),
            "PRESENCE_IDEMPOTENT_PRODUCER": str(self.idempotent_producer).lower(),
            "PYTHONPATH": str(ROOT),
            **extra,
        }
        return env

    def _spawn(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  (the child owns it)
        return subprocess.Popen(
            [sys.executable, *args], env=self.env(**extra), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )

    async def start(self) -> None:
        await create_topics(self.bootstrap, PARTITIONS)
        self.start_worker()
        await self.serve()

    async def serve(self) -> None:
        """Starts the edge and waits until its /readyz says presence flows."""
        self.edge = self._spawn("edge", "-m", "services.cli", "edge", PRESENCE_EDGE_ID="edge-test")
        await self._wait_ready()

    def start_worker(self, **settings: str) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        settings = {"PRESENCE_WORKER_ID": f"worker-test-{n}", "PRESENCE_WORKER_METRICS_PORT": str(free_port()),
                    **settings}
        worker = self._spawn(f"worker-{n}", "-m", "streams", **settings)
        self.workers.append(worker)
        self.worker_metrics_ports.append(int(settings["PRESENCE_WORKER_METRICS_PORT"]))
        return worker

    def stop_worker(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    async def _wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1) as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                assert self.edge is not None and self.edge.poll() is None, "the edge exited; see its log"
                await asyncio.sleep(0.2)
        raise TimeoutError("the edge did not become ready")

    def stop(self) -> None:
        for process in [self.edge, *self.workers]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in [self.edge, *self.workers]:
            if process is not None:
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()


async def eventually(check, timeout_s: float = 10.0, interval_s: float = 0.05):  # type: ignore[no-untyped-def]
    """Await `check()` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


async def start_edge(stack: Stack, edge_id: str, port: int, name: str, **env: str) -> subprocess.Popen[bytes]:
    edge = stack._spawn(name, "-m", "services.cli", "edge", PRESENCE_EDGE_ID=edge_id, PRESENCE_HTTP_PORT=str(port),
                        **env)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return edge
            assert edge.poll() is None, f"edge {name} exited; see its log in {stack.logs}"
            await asyncio.sleep(0.1)
    edge.kill()
    raise TimeoutError(f"edge {name} did not become ready")


def stop_edge(edge: subprocess.Popen[bytes]) -> None:
    if edge.poll() is None:
        edge.send_signal(signal.SIGINT)
        try:
            edge.wait(timeout=15)
        except subprocess.TimeoutExpired:
            edge.kill()
            edge.wait()

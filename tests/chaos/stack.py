"""The integration stack with processes that can be killed: several workers, extra edges, SIGKILL.

Built on `tests.integration.stack.Stack` (same broker search, settings and policy file); every
process listens on 127.0.0.1 and logs to its own directory per run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from services.broker import create_topics, free_port
from tests.integration.stack import Stack

LOGS = Path(os.environ.get("PRESENCE_TEST_LOGS", "/tmp/presence-test-logs"))


@dataclass
class Edge:
    name: str
    edge_id: str
    port: int
    process: subprocess.Popen[bytes]


@dataclass
class ChaosStack(Stack):
    overrides: dict[str, str] = field(default_factory=dict)  # settings on top of the integration ones
    partitions: int = 8  # the service's default; the integration stack uses 4
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    edges: list[Edge] = field(default_factory=list)  # every edge started, the first one is `edge`
    kills: list[tuple[str, float]] = field(default_factory=list)  # (process, wall time) of every SIGKILL

    def __post_init__(self) -> None:
        self.logs = LOGS / f"chaos-{time.strftime('%Y%m%d-%H%M%S')}-{self.run_id}"

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{"PRESENCE_PARTITIONS": str(self.partitions), **self.overrides, **extra})

    async def start(self, workers: int = 1) -> None:  # type: ignore[override]
        await create_topics(self.bootstrap, self.partitions)
        for _ in range(workers):
            self.start_worker()
        main = await self.start_edge()
        self.edge, self.http_port = main.process, main.port

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        worker = self._spawn(f"worker-{n}", "-m", "streams", PRESENCE_WORKER_ID=f"chaos-{self.run_id}-w{n}",
                             PRESENCE_WORKER_DATADIR=f"/tmp/presence-chaos-{self.run_id}-w{n}")
        self.workers.append(worker)
        return worker

    async def start_edge(self, **settings: str) -> Edge:
        """Another edge, with `settings` (environment variables) on top of the stack's."""
        n = len(self.edges)
        port = free_port()
        edge_id = f"chaos-{self.run_id}-e{n}"
        process = self._spawn(f"edge-{n}", "-m", "services.cli", "edge", PRESENCE_EDGE_ID=edge_id,
                              PRESENCE_HTTP_PORT=str(port), **settings)
        edge = Edge(f"edge-{n}", edge_id, port, process)
        self.edges.append(edge)
        await wait_ready(edge)
        return edge

    def stop_edge(self, edge: Edge) -> None:
        if edge.process.poll() is None:
            edge.process.send_signal(signal.SIGINT)
            try:
                edge.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                edge.process.kill()
                edge.process.wait()

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def kill(self, process: subprocess.Popen[bytes], name: str) -> None:
        """kill -9: no clean-up of any kind, as a crashed host or an OOM kill."""
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        self.kills.append((name, time.time()))

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of every live worker and edge, in MiB."""
        named = [(f"worker-{i}", w) for i, w in enumerate(self.workers)] + [(e.name, e.process) for e in self.edges]
        sizes = {}
        for name, process in named:
            if process.poll() is None:
                with contextlib.suppress(psutil.Error):
                    sizes[name] = psutil.Process(process.pid).memory_info().rss / 2**20
        return sizes

    def stop(self) -> None:
        processes = [e.process for e in self.edges] + self.workers
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def wait_ready(edge: Edge, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{edge.port}", timeout=1) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/readyz")).status_code == 200:
                    return
            assert edge.process.poll() is None, f"{edge.name} exited; see its log"
            await asyncio.sleep(0.2)
    raise TimeoutError(f"{edge.name} did not become ready")

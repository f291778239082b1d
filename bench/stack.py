"""The system under test as real processes: a broker of its own (Apache Kafka, or `PRESENCE_BROKER`), N
processor workers, M edges.

Everything listens on 127.0.0.1 only. Logs go to `<results>/logs/`. `ProcessMonitor` samples CPU
and RSS of every process of the run (psutil) so each workload can report them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from services.auth import mint_token
from services.broker import RunningBroker, create_topics, free_port, start_broker

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-" + "x" * 32


@dataclass
class StackConfig:
    workers: int = 1
    edges: int = 1
    partitions: int = 8
    heartbeat_s: float = 10.0
    timeout_s: float = 30.0
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class Named:
    name: str
    process: subprocess.Popen[bytes]
    port: int | None = None


class Stack:
    def __init__(self, config: StackConfig, logs: Path, run_id: str) -> None:
        self.config = config
        self.logs = logs
        self.run_id = run_id
        self.broker: Named | None = None
        self._broker: RunningBroker | None = None
        self._broker_dir = tempfile.TemporaryDirectory(prefix="presence-bench-kafka-")
        self.bootstrap = ""
        self.workers: list[Named] = []
        self.edges: list[Named] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        port = free_port()
        self._broker = start_broker(os.environ.get("PRESENCE_BROKER", "kafka"), Path(self._broker_dir.name), port,
                                    free_port())
        self.broker = Named("broker", self._broker.process, port)
        self.bootstrap = self._broker.bootstrap
        await create_topics(self.bootstrap, self.config.partitions)
        for i in range(self.config.workers):
            self.workers.append(Named(f"worker-{i}", self._spawn(
                f"worker-{i}", "-m", "streams", PRESENCE_WORKER_ID=f"bench-{self.run_id}-w{i}",
                PRESENCE_WORKER_DATADIR=f"/tmp/presence-bench-{self.run_id}-w{i}",
            )))
        for i in range(self.config.edges):
            http_port = free_port()
            self.edges.append(Named(f"edge-{i}", self._spawn(
                f"edge-{i}", "-m", "services.cli", "edge", PRESENCE_EDGE_ID=f"bench-{self.run_id}-e{i}",
                PRESENCE_HTTP_PORT=str(http_port),
            ), http_port))
        await self.wait_ready()

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "PRESENCE_PARTITIONS": str(self.config.partitions),
            "PRESENCE_JWT_SECRET": SECRET,
            "PRESENCE_HTTP_HOST": "127.0.0.1",
            "PRESENCE_IDEMPOTENT_PRODUCER": str(self._broker is None or self._broker.idempotent_producer).lower(),
            "PRESENCE_HEARTBEAT_S": str(self.config.heartbeat_s),
            "PRESENCE_TIMEOUT_S": str(self.config.timeout_s),
            "PRESENCE_LOG_LEVEL": "warning",
            # a one-broker benchmark: replication factor 1, memory tables, open channels
            "PRESENCE_DEV_MODE": "true",
            "PYTHONPATH": str(ROOT),
            **self.config.extra_env,
            **extra,
        }

    def _spawn(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115  (the child owns it)
        return subprocess.Popen([sys.executable, *args], env=self.env(**extra), stdout=out,
                                stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)

    async def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=1) as http:
            for edge in self.edges:
                while True:
                    self.check_alive()
                    with contextlib.suppress(httpx.HTTPError):
                        if (await http.get(f"http://127.0.0.1:{edge.port}/readyz")).status_code == 200:
                            break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{edge.name} did not become ready within {timeout_s} s")
                    await asyncio.sleep(0.2)

    def check_alive(self) -> None:
        for named in self.processes():
            if named.process.poll() is not None:
                raise RuntimeError(f"{named.name} exited with {named.process.returncode}; see {self.logs}")

    def processes(self) -> list[Named]:
        return [p for p in [self.broker, *self.workers, *self.edges] if p is not None]

    def stop(self) -> None:
        for named in [*self.edges, *self.workers]:
            if named.process.poll() is None:
                named.process.send_signal(signal.SIGINT)
        for named in [*self.edges, *self.workers]:
            try:
                named.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                named.process.kill()
                named.process.wait(timeout=5)
        if self._broker is not None:
            self._broker.stop()
        self._broker_dir.cleanup()

    # -- helpers for the load ---------------------------------------------------------------------

    def token(self, user_id: str, ttl_s: int = 6 * 3600) -> str:
        return mint_token(SECRET, user_id, None, ttl_s)

    async def metric_sum(self, name: str) -> float:
        """Sum of a Prometheus counter over every edge (all label sets)."""
        total = 0.0
        async with httpx.AsyncClient(timeout=5) as http:
            for edge in self.edges:
                text = (await http.get(f"http://127.0.0.1:{edge.port}/metrics")).text
                for line in text.splitlines():
                    if line.startswith(name) and not line.startswith("#"):
                        head, _, value = line.rpartition(" ")
                        if head == name or head.startswith(name + "{"):
                            total += float(value)
        return total


def spawn_python(logs: Path, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A helper process of the harness (floor servers), logging to `<logs>/<name>.log`."""
    logs.mkdir(parents=True, exist_ok=True)
    out = open(logs / f"{name}.log", "ab")  # noqa: SIM115
    return subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


# -- resource accounting --------------------------------------------------------------------------


@dataclass
class Usage:
    cpu_s: float
    wall_s: float
    peak_rss: int
    rss_end: int

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


class ProcessMonitor:
    """Samples RSS of registered processes every `interval_s` in a thread; CPU from cpu_times deltas."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self._procs: dict[str, psutil.Process] = {}
        self._peak: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-monitor", daemon=True)

    def add(self, name: str, pid: int) -> None:
        with self._lock, contextlib.suppress(psutil.Error):
            self._procs[name] = psutil.Process(pid)
            self._peak[name] = 0

    def remove(self, name: str) -> None:
        with self._lock:
            self._procs.pop(name, None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for name, proc in list(self._procs.items()):
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                self._last[name] = rss
                if rss > self._peak.get(name, 0):
                    self._peak[name] = rss

    def rss(self, name: str) -> int:
        with self._lock:
            proc = self._procs.get(name)
            try:
                return proc.memory_info().rss if proc is not None else 0
            except psutil.Error:
                return 0

    def window(self) -> Window:
        """Start measuring: CPU times now, peak RSS reset."""
        self.sample()
        with self._lock:
            cpu = {}
            for name, proc in self._procs.items():
                with contextlib.suppress(psutil.Error):
                    t = proc.cpu_times()
                    cpu[name] = t.user + t.system
            for name in self._peak:
                self._peak[name] = self._last.get(name, 0)
        return Window(self, cpu, time.monotonic(), _machine_busy())


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0) + getattr(t, "steal", 0)


class Window:
    def __init__(self, monitor: ProcessMonitor, cpu: dict[str, float], started: float, busy: float) -> None:
        self.monitor = monitor
        self.cpu = cpu
        self.started = started
        self.busy = busy

    def close(self) -> dict[str, Usage]:
        m = self.monitor
        m.sample()
        wall = time.monotonic() - self.started
        out = {}
        with m._lock:
            for name, proc in m._procs.items():
                if name not in self.cpu:
                    continue
                try:
                    t = proc.cpu_times()
                except psutil.Error:
                    continue
                out[name] = Usage(t.user + t.system - self.cpu[name], wall, m._peak.get(name, 0), m._last.get(name, 0))
        machine = _machine_busy() - self.busy
        ours = sum(u.cpu_s for u in out.values())
        out["(machine, all processes)"] = Usage(machine, wall, 0, 0)
        out["(other processes on the machine)"] = Usage(max(0.0, machine - ours), wall, 0, 0)
        return out

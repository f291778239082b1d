"""Security: the processor worker serves nothing on the network (Faust's web server is off)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from services.auth import mint_token
from services.broker import free_port
from tests.integration.client import wait_for_processor
from tests.integration.stack import ROOT, SECRET, Stack, eventually


def listening(pid: int) -> list[str]:
    process = psutil.Process(pid)
    sockets = []
    for p in (process, *process.children(recursive=True)):
        sockets += [f"{c.laddr.ip}:{c.laddr.port}" for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and c.laddr)]
    return sockets


def test_the_worker_listens_on_no_port(stack: Stack) -> None:
    # The stack is up and processing (the session fixture waited for a diff), so the worker's
    # web server, if it were on, would be bound by now. The edge listens: the check can see a port.
    running = [w for w in stack.workers if w.poll() is None]  # the restart test stops one on the way
    assert running
    assert stack.edge is not None and listening(stack.edge.pid) == [f"127.0.0.1:{stack.http_port}"]
    assert [listening(w.pid) for w in running] == [[] for _ in running]


def presence_up(logs: Path, broker_port: int, http_port: int) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"PRESENCE_BROKER_PORT": str(broker_port), "PRESENCE_HTTP_PORT": str(http_port),
            "PRESENCE_JWT_SECRET": SECRET, "PRESENCE_PARTITIONS": "2", "PYTHONPATH": str(ROOT)}
    presence = Path(sys.executable).with_name("presence")  # the console script `make run` calls
    command = [str(presence)] if presence.exists() else [sys.executable, "-m", "services.cli"]
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "presence-up.log", "ab") as log:
        return subprocess.Popen([*command, "up"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


async def test_make_run_listens_on_localhost_only_and_its_worker_on_nothing(stack: Stack) -> None:
    # What `make run` runs (`presence up`), on an embedded broker of its own so that its worker stays out of
    # the session's consumer group; checked once its worker processes presence.
    broker_port, http_port = free_port(), free_port()
    up = presence_up(stack.logs, broker_port, http_port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=1) as http:
            async def ready() -> bool:
                assert up.poll() is None, f"presence up exited; see {stack.logs / 'presence-up.log'}"
                with contextlib.suppress(httpx.HTTPError):
                    return (await http.get("/readyz")).status_code == 200
                return False
            await eventually(ready, timeout_s=60, interval_s=0.2)
        await wait_for_processor(f"ws://127.0.0.1:{http_port}/realtime/ws", mint_token(SECRET, "probe"), "probe")
        tree = psutil.Process(up.pid).children(recursive=True)
        workers = [p for p in tree if p.cmdline()[1:3] == ["-m", "streams"]]
        assert len(workers) == 1, [p.cmdline() for p in tree]
        everything = sorted(set(listening(up.pid)))
        assert listening(workers[0].pid) == []
        assert everything == sorted([f"127.0.0.1:{broker_port}", f"127.0.0.1:{http_port}"]), everything
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for p in psutil.Process(up.pid).children(recursive=True):
                p.kill()
            up.kill()
            up.wait()

"""Security: the processor worker serves nothing on the network but its metrics, when asked to (Faust's web
server is off)."""

from __future__ import annotations

import socket

import psutil

from tests.integration.stack import Stack


def listening(pid: int) -> list[str]:
    process = psutil.Process(pid)
    sockets = []
    for p in (process, *process.children(recursive=True)):
        sockets += [f"{c.laddr.ip}:{c.laddr.port}" for c in p.net_connections(kind="inet")
                    if c.status == psutil.CONN_LISTEN or (c.type == socket.SOCK_DGRAM and c.laddr)]
    return sockets


def test_the_worker_listens_on_its_metrics_port_only(stack: Stack) -> None:
    # The stack is up and processing (the session fixture waited for a diff), so the worker's
    # web server, if it were on, would be bound by now. The edge listens: the check can see a port.
    # The harness gives each worker a metrics port (PRESENCE_WORKER_METRICS_PORT); `presence up` gives none,
    # and its worker listens on nothing (test_presence_up.py).
    running = [(w, port) for w, port in zip(stack.workers, stack.worker_metrics_ports, strict=True) if w.poll() is None]
    assert running  # the restart test stops one on the way
    assert stack.edge is not None and listening(stack.edge.pid) == [f"127.0.0.1:{stack.http_port}"]
    assert [listening(w.pid) for w, _ in running] == [[f"127.0.0.1:{port}"] for _, port in running]

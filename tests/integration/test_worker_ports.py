"""Security: the processor worker serves nothing on the network (Faust's web server is off)."""

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


def test_the_worker_listens_on_no_port(stack: Stack) -> None:
    # The stack is up and processing (the session fixture waited for a diff), so the worker's
    # web server, if it were on, would be bound by now. The edge listens: the check can see a port.
    running = [w for w in stack.workers if w.poll() is None]  # the restart test stops one on the way
    assert running
    assert stack.edge is not None and listening(stack.edge.pid) == [f"127.0.0.1:{stack.http_port}"]
    assert [listening(w.pid) for w in running] == [[] for _ in running]

"""A peer that reads nothing cannot hold a finished WebSocket connection open (services/ws_protocol.py).

A real uvicorn server on 127.0.0.1 runs an app that accepts, writes one 16 MiB frame and returns;
a raw TCP client completes the handshake and never reads. The frame cannot leave, so uvicorn's
`transport.close()` waits for ever; the edge's protocol aborts the connection after uvicorn's close
timeout plus `LINGER_S`. The same scene on uvicorn's own protocol is the control: its socket is
still open after that time (if uvicorn fixes this, the control fails and the subclass can go). The
app itself can abort at once, through the scope extension the protocol adds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from services.broker import free_port
from services.ws_protocol import ABORT, LINGER_S, AbortableWebSocketProtocol

CLOSE_TIMEOUT_S = 0.5  # uvicorn's is 10 s


def quick(protocol: type[WebSocketsSansIOProtocol]) -> type[WebSocketsSansIOProtocol]:
    """`protocol` with a short close timeout."""

    class Quick(protocol):  # type: ignore[valid-type, misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.close_timeout = CLOSE_TIMEOUT_S

    return Quick


async def flood_then_return(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "bytes": os.urandom(16 * 1024 * 1024)})




@contextlib.asynccontextmanager
async def serving(app: Any, protocol: type[asyncio.Protocol]) -> AsyncIterator[tuple[int, socket.socket]]:
    """A uvicorn server and a raw client that completed the WebSocket handshake and never reads."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, ws=protocol, log_level="warning",
                                           lifespan="off"))
    task = asyncio.create_task(server.serve())
    client = socket.socket()
    try:
        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.01)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
        client.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        client.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                        ).encode())
        started = time.monotonic()
        while not server_side_open(port, client):  # noqa: ASYNC110 - the kernel offers no event
            assert time.monotonic() - started < 5, "the server did not accept the connection"
            await asyncio.sleep(0.01)
        yield port, client
    finally:
        client.close()
        server.should_exit = True
        await task


def server_side_open(port: int, client: socket.socket) -> bool:
    client_port = client.getsockname()[1]
    return any(c.laddr.port == port and c.raddr and c.raddr.port == client_port
               for c in psutil.Process().net_connections(kind="tcp"))


async def open_after_the_app_returned(protocol: type[asyncio.Protocol]) -> bool:
    async with serving(flood_then_return, protocol) as (port, client):
        await asyncio.sleep(0.5 + CLOSE_TIMEOUT_S + LINGER_S + 1)  # handshake, frame written, app returned
        return server_side_open(port, client)


async def test_a_finished_connection_whose_peer_reads_nothing_is_aborted() -> None:
    assert not await open_after_the_app_returned(quick(AbortableWebSocketProtocol))


async def test_control_uvicorns_own_protocol_keeps_it_open() -> None:
    assert await open_after_the_app_returned(quick(WebSocketsSansIOProtocol))


async def test_the_app_can_abort_a_connection_at_once() -> None:
    abort_now = asyncio.Event()

    async def flood_then_abort(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await flood_then_return(scope, receive, send)
        await abort_now.wait()
        scope["extensions"][ABORT]["abort"]()
        await receive()  # the disconnect the abort causes

    async with serving(flood_then_abort, AbortableWebSocketProtocol) as (port, client):
        abort_now.set()
        started = time.monotonic()
        while server_side_open(port, client):
            assert time.monotonic() - started < 2, "the abort did not drop the connection"
            await asyncio.sleep(0.05)

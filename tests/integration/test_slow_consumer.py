"""Security limit: a subscriber that stops reading is disconnected; the edge does not buffer for it without bound.

Each test starts an edge of its own, so its RSS and its log belong to this test's sockets only: a
subscriber that reads everything (`good`) and one that stops reading its socket (`slow`), both
subscribed to 20 channels. A writer on the session's edge, joined to those channels, sends updates
with 3.4 KiB of incompressible metadata: each update is 20 frames of about 3.6 KiB for each
subscriber. The edge queues at most 1000 frames for a socket (`OUTBOX_FRAMES`), then drops them and
closes it with the error `connection.slow_consumer` and 1013 (docs/errors.md), aborting the
connection if the close is not taken within `CLOSE_WAIT_S`; it logs "closing slow consumer
<connection id>", which is how the tests see the moment it gave up without reading the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import websockets

from services.broker import free_port
from tests.integration.client import Client, heartbeating
from tests.integration.frames import user
from tests.integration.stack import HEARTBEAT_S, MAX_CHANNELS, Stack, eventually, start_edge, stop_edge

MIB = 1024 * 1024
UPDATES_PER_S = 15  # under the per-connection frame rate (20 a second)
UPDATES_AFTER = 150  # updates sent after the edge gave up on the slow socket: 3,000 frames, about 10.8 MB each
LIMIT_S = 60  # the edge must give up within this (about 7 s here: 100-110 updates)


def metadata(n: int) -> dict[str, Any]:
    return {"n": n, "blob": os.urandom(1700).hex()}  # 3.4 KiB, under the 4 KiB limit


@dataclass
class Scene:
    edge: psutil.Process
    log: Path
    port: int
    writer: Client
    good: Client
    slow: Any  # websockets.ClientConnection, reading paused
    slow_id: str
    channels: list[str]
    sent: int = 0
    rss: list[int] = field(default_factory=list)

    def gave_up(self) -> bool:
        return f"closing slow consumer {self.slow_id}" in self.log.read_text()

    def edge_side_socket(self) -> list[Any]:
        port = self.slow.transport.get_extra_info("sockname")[1]
        return [c for c in self.edge.net_connections(kind="tcp") if c.raddr and c.raddr.port == port]

    async def update(self) -> None:
        self.sent += 1
        await self.writer.send(type="update", metadata=metadata(self.sent))
        self.rss.append(self.edge.memory_info().rss)
        await asyncio.sleep(1 / UPDATES_PER_S)


@contextlib.asynccontextmanager
async def scene(stack: Stack, connect) -> AsyncIterator[Scene]:  # type: ignore[no-untyped-def]
    tag = uuid.uuid4().hex[:6]
    port = free_port()
    edge = await start_edge(stack, f"edge-slow-{tag}", port, f"edge-slow-{tag}")
    url = f"ws://127.0.0.1:{port}/realtime/ws"
    channels = [f"slow-{tag}-{i}" for i in range(MAX_CHANNELS)]
    try:
        writer = await connect(user("writer"))
        for channel in channels:
            await writer.join(channel)
        good = Client(url, stack.token(user("good")))
        await good.connect()
        for channel in channels:
            await good.send(type="subscribe", channel=channel)
        # No compression (it would shrink what the buffers hold), no client pings (a paused reader cannot see
        # the pongs), and the library itself buffers at most one frame before it stops reading the socket.
        slow = await websockets.connect(f"{url}?token={stack.token(user('slow'))}", compression=None,
                                        ping_interval=None, max_queue=1)
        slow_id = orjson.loads(await slow.recv())["connection_id"]
        for channel in channels:
            await slow.send(orjson.dumps({"type": "subscribe", "channel": channel}).decode())
        snapshots = 0
        while snapshots < len(channels):
            snapshots += orjson.loads(await slow.recv())["type"] == "presence.snapshot"
        await eventually(lambda: all(c in good.views for c in channels))
        slow.transport.pause_reading()  # from here on the slow client reads nothing; the TCP buffers fill
        try:
            async with heartbeating(good):
                yield Scene(psutil.Process(edge.pid), stack.logs / f"edge-slow-{tag}.log", port, writer, good, slow,
                            slow_id, channels)
        finally:
            await good.close()
            slow.transport.abort()
    finally:
        stop_edge(edge)


async def until_the_edge_gives_up(scene: Scene) -> float:
    """Updates until the edge logs that it closes the slow socket; the slow client heartbeats meanwhile (it is
    alive, it only does not read), each heartbeat only after checking the edge has not given up yet."""
    start = time.monotonic()
    beat = start
    while not scene.gave_up():
        assert time.monotonic() - start < LIMIT_S, f"still queueing after {scene.sent} updates"
        if time.monotonic() - beat >= HEARTBEAT_S:
            await scene.slow.send('{"type":"heartbeat"}')
            beat = time.monotonic()
        await scene.update()
    return time.monotonic() - start


async def test_a_subscriber_that_stops_reading_is_closed_with_1013_and_costs_bounded_memory(stack: Stack,
                                                                                           connect) -> None:
    async with scene(stack, connect) as s:
        baseline = s.edge.memory_info().rss
        took = await until_the_edge_gives_up(s)
        updates_before, at_close = s.sent, s.edge.memory_info().rss
        # The slow client reads again at once, within the edge's close wait: what the TCP buffers held, the
        # error, then the close. Meanwhile the others keep getting updates; none is buffered for the slow one.
        s.slow.transport.resume_reading()
        reading = asyncio.create_task(read_until_closed(s.slow))
        for _ in range(UPDATES_AFTER):
            await s.update()
        after = s.rss[-1]
        frames, closed = await asyncio.wait_for(reading, 30)
        # Everyone else got every update, in order (the test client asserts no gap in seq).
        await eventually(lambda: all(s.good.members(c)[s.writer.user_id]["metadata"]["n"] == s.sent
                                     for c in s.channels), timeout_s=30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}") as http:
            await eventually(lambda: _connections(http, 1), timeout_s=10)  # only `good` is left on the edge
    fanned_out = 20 * updates_before
    print(f"\nreliability figures: the edge gave up after {updates_before} updates ({fanned_out} frames due to the "
          f"slow socket) in {took:.1f} s; the slow client then read {len(frames)} frames and close {closed.rcvd}; "
          f"edge RSS {baseline / MIB:.1f} MiB at start, {at_close / MIB:.1f} MiB when it gave up, "
          f"{after / MIB:.1f} MiB after {UPDATES_AFTER} more updates, max {max(s.rss) / MIB:.1f} MiB")
    assert closed.rcvd is not None and closed.rcvd.code == 1013
    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "connection.slow_consumer"
    assert len(frames) < fanned_out  # it was cut off, not sent everything late
    # After the edge gave up, 3,000 more frames (about 10.8 MB) went to the channel's subscribers: buffered for
    # the slow socket, they would show in the RSS.
    assert after - at_close < 4 * MIB


async def read_until_closed(ws: Any) -> tuple[list[dict[str, Any]], websockets.ConnectionClosed]:
    frames = []
    try:
        while True:
            frames.append(orjson.loads(await ws.recv()))
    except websockets.ConnectionClosed as closed:
        return frames, closed


async def _connections(http: httpx.AsyncClient, expected: int) -> bool:
    metrics = (await http.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("presence_ws_connections "))
    return float(line.split()[1]) == expected


async def test_a_subscriber_that_never_reads_again_is_disconnected(stack: Stack, connect) -> None:
    async with scene(stack, connect) as s:
        await until_the_edge_gives_up(s)
        gave_up = time.monotonic()
        # Alive (it keeps heartbeating), it never reads again: the edge must let go of the connection.
        with contextlib.suppress(TimeoutError):
            async def closed() -> bool:
                with contextlib.suppress(websockets.ConnectionClosed):
                    await s.slow.send('{"type":"heartbeat"}')
                return not s.edge_side_socket()
            await eventually(closed, timeout_s=10, interval_s=HEARTBEAT_S)
        still_open = s.edge_side_socket()
        print(f"\nreliability figures: {time.monotonic() - gave_up:.1f} s after the edge gave up, its socket to the "
              f"slow client: {[c.status for c in still_open]}")
        assert still_open == []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}") as http:
            assert await _connections(http, 1)  # its session ended: only `good` is counted

"""The load: many WebSocket users on the benchmark's cheap client, plus REST updates, recording
every event id the edge acknowledged.

A `Peer` is one connection of one user (`bench.wsclient.WSConnection`, no task of its own). The
`Hub` holds them all, heartbeats every open one that is not `silent` every 0.5 s, reads only the
frames it needs (acks, welcomes, snapshots, errors; diffs for observers only) and drives an open
loop of updates: update k is due at t0 + k / rate, over WebSocket or `POST /realtime/presence/update`.
Everything is bounded in count and in time, and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from bench import wsclient
from bench.wsclient import WSConnection
from tests.chaos.stack import ChaosStack, Edge
from tests.integration.stack import eventually

HOST = "127.0.0.1"
HEARTBEAT = b'{"type":"heartbeat"}'
BEAT_EVERY_S = 0.5
IDLE_CLOSE_S = 2.0
STATUSES = ("online", "away", "busy", "dnd", "invisible")
DEVICES = ("web", "ios", "android")


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass(eq=False)
class Peer:
    user_id: str
    edge: Edge
    keeper: bool = True  # held open and heartbeating until the end, never closed by the load
    observer: bool = False  # parses diffs and records when it saw each user leave
    device: str | None = None
    channel: str | None = None
    conn: WSConnection | None = None
    connection_id: str = ""
    silent: bool = False  # sends nothing any more (a half-open client)
    closed_by_us: bool = False
    opened_at: float = 0.0
    closed_code: int | None = None
    left_seen: dict[str, int] = field(default_factory=dict)  # observer: user -> wall ms its leave arrived
    # A recorder keeps every presence frame it gets (snapshot, diff, batch, resumed), in arrival order.
    presence_frames: list[dict[str, Any]] | None = None
    last_beat_ms: int = 0  # wall ms of the last frame this client sent
    ended_ms: int = 0  # wall ms when the test made it vanish, go half-open or killed its edge
    _waiting: dict[str, asyncio.Future[Any]] = field(default_factory=dict)

    @property
    def open(self) -> bool:
        return self.conn is not None and self.conn.state == "open"

    def send(self, frame: dict[str, Any] | bytes) -> bool:
        if self.conn is None or self.silent:
            return False
        payload = frame if isinstance(frame, bytes) else orjson.dumps(frame)
        if self.conn.send_text(payload):
            self.last_beat_ms = wall_ms()
            return True
        return False

    def abort(self) -> None:
        """The client vanishes: TCP reset, no close handshake, no leave."""
        self.closed_by_us = True
        self.ended_ms = self.ended_ms or wall_ms()
        if self.conn is not None:
            self.conn.abort()

    def go_half_open(self) -> None:
        """The client stops sending and reading; the socket stays open."""
        self.silent = True
        self.ended_ms = wall_ms()
        if self.conn is not None and self.conn._transport is not None:
            self.conn._transport.pause_reading()

    async def close(self) -> None:
        self.closed_by_us = True
        if self.conn is not None:
            self.silent = False
            await self.conn.close(1000, timeout_s=5)


class HttpPool:
    """Requests over a few kept-alive HTTP/1.1 connections, raw: httpx cost 80% of the load generator's
    CPU at 100 POSTs a second, this a few percent. Answers must carry a Content-Length (Starlette's do)."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self._used: dict[int, float] = {}
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(None)  # a slot, connected on first use

    async def request(self, method: str, path: str, token: str, body: bytes = b"",
                      timeout_s: float = 30) -> tuple[int, bytes]:
        slot = await self._idle.get()
        if slot is not None and time.monotonic() - self._used.get(id(slot), 0) > IDLE_CLOSE_S:
            slot[1].close()  # the server closes idle keep-alive connections after 5 s (uvicorn's default)
            slot = None
        try:
            if slot is None:
                slot = await asyncio.open_connection(HOST, self.port)
            reader, writer = slot
            writer.write(method.encode() + b" " + path.encode() + b" HTTP/1.1\r\nHost: "
                         + f"{HOST}:{self.port}".encode() + b"\r\nAuthorization: Bearer " + token.encode()
                         + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                         + b"\r\n\r\n" + body)
            async with asyncio.timeout(timeout_s):
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                status = int(lines[0].split(b" ", 2)[1])
                lengths = [int(v) for k, _, v in (line.partition(b":") for line in lines[1:])
                           if k.strip().lower() == b"content-length"]
                if not lengths:
                    raise ValueError(f"an answer without Content-Length: {lines[0]!r}")
                answer = await reader.readexactly(lengths[0])
        except BaseException:
            if slot is not None:
                slot[1].close()
            self._idle.put_nowait(None)
            raise
        self._used[id(slot)] = time.monotonic()
        self._idle.put_nowait(slot)
        return status, answer

    def close(self) -> None:
        while not self._idle.empty():
            slot = self._idle.get_nowait()
            if slot is not None:
                slot[1].close()


class Hub:
    def __init__(self, stack: ChaosStack, seed: int) -> None:
        self.stack = stack
        self.rng = random.Random(seed)
        self.peers: list[Peer] = []
        self.acked: dict[str, tuple[str, str]] = {}  # event id -> (user, "ws" or "post")
        self.sent: dict[int, Peer] = {}  # ref -> the peer that sent it, until acked
        self.post_answers: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.unexpected_closes: Counter[str] = Counter()
        self.typing_sent = 0
        self.frames_in = 0
        self._ref = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._beats: asyncio.Task[None] | None = None
        self._pools: dict[int, HttpPool] = {}
        self._tokens: dict[str, str] = {}
        self._closed = False

    # -- frames in ------------------------------------------------------------------------------

    def on_text(self, peer: Peer, payload: bytes) -> None:
        self.frames_in += 1
        if peer.presence_frames is not None and payload.startswith(b'{"type":"presence.'):
            peer.presence_frames.append(orjson.loads(payload))
        if payload.startswith(b'{"type":"presence.diff"') or payload.startswith(b'{"type":"presence.batch"'):
            if peer.observer:
                frame = orjson.loads(payload)
                now = wall_ms()
                for departure in frame["leaves"]:
                    peer.left_seen.setdefault(departure["user_id"], now)
            return
        frame = orjson.loads(payload)
        kind = frame["type"]
        if kind == "ack" and "event_id" in frame:
            sender = self.sent.pop(frame["ref"], None)
            if sender is not None:
                self.acked[frame["event_id"]] = (sender.user_id, "ws")
        elif kind == "error":
            self.errors[f"ws:{frame['code']}"] += 1
        elif kind == "welcome":
            peer.connection_id = frame["connection_id"]
        waiter = peer._waiting.pop(kind, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    def on_close(self, peer: Peer, code: int | None) -> None:
        peer.closed_code = code
        if not peer.closed_by_us:
            self.unexpected_closes[f"{peer.edge.name}:{code}"] += 1

    async def _expect(self, peer: Peer, kind: str, timeout_s: float) -> dict[str, Any]:
        future = peer._waiting[kind] = asyncio.get_running_loop().create_future()
        return await asyncio.wait_for(future, timeout_s)

    # -- connections ----------------------------------------------------------------------------

    def token(self, user_id: str) -> str:
        if user_id not in self._tokens:
            self._tokens[user_id] = self.stack.token(user_id)
        return self._tokens[user_id]

    async def connect(self, user_id: str, edge: Edge | None = None, channel: str | None = None,
                      timeout_s: float = 20, **flags: Any) -> Peer:
        """Open, wait for the welcome, join `channel` (when given) and wait for its snapshot."""
        self.start_heartbeats()  # from the first connection on: a connection left silent times out
        edge = edge or self.stack.edges[0]
        peer = Peer(user_id, edge, **flags)
        query = {"token": self.token(user_id)}
        if peer.device:
            query["device"] = peer.device
        welcome = asyncio.get_running_loop().create_future()
        peer._waiting["welcome"] = welcome
        # The welcome may arrive with the upgrade answer: the callbacks know their peer from the start.
        conn = await wsclient.connect(HOST, edge.port, f"/realtime/ws?{urlencode(query)}",
                                      lambda _, payload: self.on_text(peer, payload),
                                      lambda _, code: self.on_close(peer, code), timeout_s)
        peer.conn, peer.opened_at, peer.last_beat_ms = conn, time.monotonic(), wall_ms()
        self.peers.append(peer)
        try:
            await asyncio.wait_for(welcome, timeout_s)
        except TimeoutError as exc:
            raise TimeoutError(f"no welcome within {timeout_s} s") from exc
        if channel is not None:
            try:
                await self.join(peer, channel, timeout_s)
            except TimeoutError as exc:
                raise TimeoutError(f"no snapshot within {timeout_s} s") from exc
        return peer

    async def join(self, peer: Peer, channel: str, timeout_s: float = 20) -> None:
        snapshot = asyncio.get_running_loop().create_future()
        peer._waiting["presence.snapshot"] = snapshot
        peer.send({"type": "join", "channel": channel})
        await asyncio.wait_for(snapshot, timeout_s)
        peer.channel = channel

    async def recorder(self, user_id: str, channels: list[str], edge: Edge | None = None) -> Peer:
        """A connection that subscribes to `channels` (without being present in them) and records
        every presence frame it gets from then on (`Peer.presence_frames`)."""
        peer = await self.connect(user_id, edge, keeper=False, presence_frames=[])
        for channel in channels:
            await self.subscribe(peer, channel)
        return peer

    async def subscribe(self, peer: Peer, channel: str, timeout_s: float = 20) -> None:
        snapshot = asyncio.get_running_loop().create_future()
        peer._waiting["presence.snapshot"] = snapshot
        peer.send({"type": "subscribe", "channel": channel})
        await asyncio.wait_for(snapshot, timeout_s)

    def start_heartbeats(self) -> None:
        if self._beats is None:
            self._beats = asyncio.create_task(self._beat_forever())

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(BEAT_EVERY_S / 2)
            due = wall_ms() - BEAT_EVERY_S * 1000
            for peer in self.peers:
                if peer.open and not peer.silent and peer.last_beat_ms <= due:
                    peer.send(HEARTBEAT)

    # -- updates --------------------------------------------------------------------------------

    def update_body(self, k: int) -> dict[str, Any]:
        """A random update; its status_text is unique, so every acknowledged one is told apart."""
        rng = self.rng
        body: dict[str, Any] = {"status_text": f"u{k}"}
        roll = rng.random()
        if roll < 0.5:
            body["status"] = rng.choice(STATUSES)
        elif roll < 0.55:
            body.update(status="in-a-meeting", status_metadata={"room": f"r{k % 7}"})
        if rng.random() < 0.2:
            body["metadata"] = {"n": k, "team": rng.choice(("a", "b", "c"))}
        if rng.random() < 0.1:
            body["status_emoji"] = rng.choice(("🙂", "🚀", ""))
        if rng.random() < 0.03:
            body["expires_in_s"] = 2
        return body

    def send_ws_update(self, peer: Peer, k: int) -> None:
        self._ref += 1
        ref = self._ref
        if peer.send({"type": "update", "ref": ref, **self.update_body(k)}):
            self.sent[ref] = peer
        else:
            self.errors["update on a closed connection"] += 1

    async def post_update(self, user_id: str, k: int, edge: Edge | None = None, wait: bool = False) -> bool:
        """POST an update (a random one; a fixed probe with `wait`, read back before the answer); True on 2xx."""
        edge = edge or self.stack.edges[0]
        pool = self._pools.setdefault(edge.port, HttpPool(edge.port, 16))
        body = {"status_text": "probe"} if wait else self.update_body(k)
        label = "probe " if wait else ""
        path = "/realtime/presence/update" + ("?wait=true" if wait else "")
        try:
            status, answer = await pool.request("POST", path, self.token(user_id), orjson.dumps(body))
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.post_answers[label + type(exc).__name__] += 1
            return False
        self.post_answers[label + str(status)] += 1
        if status // 100 != 2:
            return False
        self.acked[orjson.loads(answer)["event_id"]] = (user_id, "post")
        return True

    async def get(self, path: str, user_id: str) -> tuple[int, bytes]:
        pool = self._pools.setdefault(self.stack.edges[0].port, HttpPool(self.stack.edges[0].port, 16))
        return await pool.request("GET", path, self.token(user_id))

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drive(self, rate: float, duration_s: float, senders: Callable[[], list[Peer]],
                    post_share: float, typing_share: float, max_posts_in_flight: int = 24) -> int:
        """Open loop: op k is due at t0 + k / rate; stops after rate x duration ops or 2 x duration + 10 s."""
        total = int(rate * duration_s)
        t0 = time.monotonic()
        hard_stop = t0 + 2 * duration_s + 10
        k = 0
        while k < total and time.monotonic() < hard_stop:
            due = min(total, int((time.monotonic() - t0) * rate) + 1)
            candidates = [p for p in senders() if p.open and not p.silent]
            while k < due:
                k += 1
                if not candidates:
                    self.errors["no open sender"] += 1
                    continue
                peer = self.rng.choice(candidates)
                roll = self.rng.random()
                if roll < typing_share and peer.channel is not None:
                    peer.send({"type": "typing.start", "channel": peer.channel})
                    self.typing_sent += 1
                elif roll < typing_share + post_share and len(self._tasks) < max_posts_in_flight:
                    self.spawn(self.post_update(peer.user_id, k, peer.edge))
                else:
                    self.send_ws_update(peer, k)
            await asyncio.sleep(0.002)
        return k

    async def churn(self, churners: list[Peer], rate: float, stop: asyncio.Event) -> Counter[str]:
        """`rate` times a second a churning user's connection ends (clean close or vanishes) and it
        reconnects at once; returns how often each happened."""
        done: Counter[str] = Counter()
        while not stop.is_set():
            await asyncio.sleep(self.rng.expovariate(rate))
            idle = [p for p in churners if p.open and not p.closed_by_us]
            if not idle:
                continue
            old = self.rng.choice(idle)
            churners.remove(old)
            if self.rng.random() < 0.5:
                await old.close()
                done["clean close"] += 1
            else:
                old.abort()
                done["vanished"] += 1
            try:
                churners.append(await self.connect(old.user_id, old.edge, old.channel, keeper=False,
                                                   device=old.device))
                done["reconnected"] += 1
            except (OSError, TimeoutError, wsclient.HandshakeError) as exc:
                done[f"reconnect failed: {type(exc).__name__}"] += 1
        return done

    async def settle_sends(self, timeout_s: float = 15) -> None:
        """Wait for answers to what was sent (acks and POSTs)."""
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=timeout_s)
        with contextlib.suppress(TimeoutError):  # what stays unanswered is reported by the caller
            await eventually(lambda: not self.unanswered(), timeout_s=timeout_s)

    def unanswered(self) -> Counter[str]:
        """WebSocket updates without an answer: on connections still open (none should be), or that we
        closed (their answer may have been lost with the socket)."""
        return Counter("on an open connection" if p.open and not p.closed_by_us else "on a connection we ended"
                       for p in self.sent.values())

    async def close(self) -> None:
        """Every connection closes cleanly (aborted when that fails); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._beats is not None:
            self._beats.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beats
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(p.close() for p in self.peers if p.open), return_exceptions=True)
        for peer in self.peers:
            if peer.conn is not None and peer.conn.state != "closed":
                peer.abort()
        for pool in self._pools.values():
            pool.close()

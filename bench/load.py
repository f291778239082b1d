"""The load generator: a population of WebSocket members in channels, the workloads, and the matching.

Latency of an update is measured per receiving member: from the moment the sender's `update` frame
is written to its socket (`time.perf_counter()` in this process) to the moment another member of the
channel receives a `presence.diff` (or `presence.batch`) whose `updates` carry that user with the
unique `status_text` of the update (`b<seq>` for WebSocket updates, `r<seq>` for REST ones). The
sender's own echo is not counted. Joins and leaves (churn) are matched by user id in `joins` and
`leaves` the same way. Every load loop is bounded in count and in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from bench import wsclient
from bench.wsclient import WSConnection

perf = time.perf_counter
HEARTBEAT = b'{"type":"heartbeat"}'
HOST = "127.0.0.1"


@dataclass
class Phase:
    name: str
    t0: float = field(default_factory=perf)
    t0_epoch_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    send_end: float = 0.0
    t_end: float = 0.0
    t_end_epoch_ms: int = 0
    offered_rate: float = 0.0
    sent: int = 0
    expected: int = 0
    received: int = 0
    acks: int = 0
    lat: array = field(default_factory=lambda: array("d"))  # per delivery, seconds
    at: array = field(default_factory=lambda: array("d"))  # send time of that delivery, from t0
    ack_lat: array = field(default_factory=lambda: array("d"))
    http_lat: array = field(default_factory=lambda: array("d"))
    extra_lat: dict[str, array] = field(default_factory=dict)  # connect, join -> snapshot, ...
    errors: Counter = field(default_factory=Counter)
    http_status: Counter = field(default_factory=Counter)
    frames_start: int = 0
    frames_end: int = 0
    loop_lag_max: float = 0.0
    missing: int = 0
    notes: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    per_update_max: array = field(default_factory=lambda: array("d"))
    recs: list = field(default_factory=list, repr=False)  # the Rec of every update, join and leave sent
    tracked: bool = False  # joins/leaves tracked by receiver set (churn)

    def extra(self, name: str) -> array:
        return self.extra_lat.setdefault(name, array("d"))

    @property
    def send_window_s(self) -> float:
        return max(1e-9, (self.send_end or self.t_end) - self.t0)

    @property
    def window_s(self) -> float:
        return max(1e-9, self.t_end - self.t0)


class Rec:
    """One update in flight: who sent it when, how many others should see it."""

    __slots__ = ("phase", "t", "user", "expected", "received", "maxlat", "members", "got", "kind")

    def __init__(self, phase: Phase, t: float, user: str, expected: int, kind: str = "update") -> None:
        self.kind = kind
        self.phase = phase
        self.t = t
        self.user = user
        self.expected = expected
        self.received = 0
        self.maxlat = 0.0
        self.members: tuple[WSConnection, ...] = ()
        self.got: set[int] | None = None


class Harness:
    def __init__(self, heartbeat_s: float, seed: int = 1) -> None:
        self.heartbeat_s = heartbeat_s
        self.rng = random.Random(seed)
        self.phase = Phase("setup")
        self.records: list[Rec] = []
        self.pending_joins: dict[str, Rec] = {}
        self.pending_leaves: dict[str, Rec] = {}
        self.conns: list[WSConnection | None] = []  # by population slot
        self.members: dict[str, tuple[WSConnection, ...]] = {}  # channel -> open members
        self.frames = 0
        self.serial = 0
        self.closing: set[int] = set()  # serials of connections we close on purpose
        self._heartbeats: asyncio.Task[None] | None = None
        self._lag: asyncio.Task[None] | None = None
        self.tokens: dict[str, str] = {}

    # -- frames in --------------------------------------------------------------------------------

    def on_text(self, conn: WSConnection, payload: bytes) -> None:
        now = perf()
        self.frames += 1
        if payload.startswith(b'{"type":"presence.diff"') or payload.startswith(b'{"type":"presence.batch"'):
            frame = orjson.loads(payload)
            conn.occupancy = frame["occupancy"]
            for m in frame["updates"]:
                text = m.get("status_text")
                if text and (text[0] == "b" or text[0] == "r"):
                    self._delivered(conn, int(text[1:]), now)
            if frame["joins"] and self.pending_joins:
                for m in frame["joins"]:
                    rec = self.pending_joins.get(m["user_id"])
                    if rec is not None:
                        self._delivered_once(conn, rec, now)
            if frame["leaves"] and self.pending_leaves:
                for d in frame["leaves"]:
                    rec = self.pending_leaves.get(d["user_id"])
                    if rec is not None:
                        self._delivered_once(conn, rec, now)
        elif payload.startswith(b'{"type":"ack"'):
            ref = orjson.loads(payload).get("ref")
            if isinstance(ref, int) and 0 <= ref < len(self.records):
                rec = self.records[ref]
                rec.phase.acks += 1
                rec.phase.ack_lat.append(now - rec.t)
        elif payload.startswith(b'{"type":"welcome"'):
            conn.welcome_t = now
            self._wake(conn, "welcome", None)
        elif payload.startswith(b'{"type":"presence.snapshot"'):
            frame = orjson.loads(payload)
            conn.occupancy = frame["occupancy"]
            self._wake(conn, "snapshot", frame)
        elif payload.startswith(b'{"type":"error"'):
            self.phase.errors["ws:" + orjson.loads(payload).get("code", "?")] += 1
        else:
            self.phase.errors["unexpected frame"] += 1

    def _wake(self, conn: WSConnection, kind: str, value: Any) -> None:
        waiter = conn.waiter
        if waiter is not None and waiter[0] == kind and not waiter[1].done():
            waiter[1].set_result(value)

    def _delivered(self, conn: WSConnection, seq: int, now: float) -> None:
        if seq >= len(self.records):
            return
        rec = self.records[seq]
        if conn.user == rec.user:
            return  # the sender's own echo
        seen = conn.seen
        if seen is None:
            return
        if seq <= seen.get(rec.user, -1):
            return  # already counted (a later frame repeats the member)
        seen[rec.user] = seq
        self._count(rec, now)

    def _delivered_once(self, conn: WSConnection, rec: Rec, now: float) -> None:
        if conn.user == rec.user or rec.got is None or conn.idx in rec.got or conn not in rec.members:
            return  # only members that held their snapshot when the change was sent are counted
        rec.got.add(conn.idx)
        self._count(rec, now)

    @staticmethod
    def _count(rec: Rec, now: float) -> None:
        lat = now - rec.t
        rec.received += 1
        if lat > rec.maxlat:
            rec.maxlat = lat
        phase = rec.phase
        phase.received += 1
        phase.lat.append(lat)
        phase.at.append(rec.t - phase.t0)
        if rec.kind != "update":
            phase.extra(rec.kind).append(lat)

    def on_close(self, conn: WSConnection, code: int | None) -> None:
        if conn.idx not in self.closing:
            self.phase.errors[f"closed by server ({code})"] += 1
        self._remove_member(conn)

    # -- phases -----------------------------------------------------------------------------------

    def begin(self, name: str) -> Phase:
        self.phase = Phase(name)
        self.phase.frames_start = self.frames
        return self.phase

    def end(self, phase: Phase) -> None:
        phase.t_end = perf()
        phase.t_end_epoch_ms = int(time.time() * 1000)
        phase.frames_end = self.frames
        phase.missing = self.missing_of(phase)
        for rec in phase.recs:
            if rec.got is None and rec.received:
                phase.per_update_max.append(rec.maxlat)

    @staticmethod
    def missing_of(phase: Phase) -> int:
        """Deliveries still due: for updates, others open at send time; for joins/leaves, those still open."""
        if not phase.tracked:
            return max(0, phase.expected - phase.received)
        missing = 0
        for rec in phase.recs:
            if rec.got is None:
                missing += max(0, rec.expected - rec.received)
            else:
                missing += sum(1 for c in rec.members
                               if c.user != rec.user and c.idx not in rec.got and c.state == "open")
        return missing

    async def drain(self, phases: list[Phase], timeout_s: float, stall_s: float = 15.0) -> None:
        """Wait until every expected delivery of the phases arrived, or timeout, or no progress for stall_s."""
        deadline = perf() + timeout_s
        last_progress, last_received = perf(), -1
        while perf() < deadline:
            outstanding = sum(self.missing_of(p) for p in phases)  # cheap unless churn
            if outstanding == 0:
                return
            received = sum(p.received for p in phases)
            if received != last_received:
                last_received, last_progress = received, perf()
            elif perf() - last_progress > stall_s:
                return
            await asyncio.sleep(0.1 if outstanding < 10_000 else 0.5)

    async def quiesce(self, quiet_s: float, timeout_s: float) -> float:
        """Wait until no frame arrived for quiet_s (the previous workload's backlog is through); seconds waited."""
        t0 = perf()
        last_frames, last_change = self.frames, perf()
        while perf() - t0 < timeout_s:
            await asyncio.sleep(0.1)
            if self.frames != last_frames:
                last_frames, last_change = self.frames, perf()
            elif perf() - last_change >= quiet_s:
                break
        return perf() - t0

    # -- background: heartbeats and loop lag ------------------------------------------------------

    def start_background(self, heartbeats: bool) -> None:
        if heartbeats and self._heartbeats is None:
            self._heartbeats = asyncio.create_task(self._heartbeat_forever())
        if self._lag is None:
            self._lag = asyncio.create_task(self._lag_forever())

    async def stop_background(self) -> None:
        for task in (self._heartbeats, self._lag):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._heartbeats = self._lag = None

    async def _heartbeat_forever(self) -> None:
        """Send a heartbeat on every connection that sent nothing for 0.9 x heartbeat_s (the protocol's rule)."""
        every = 0.9 * self.heartbeat_s
        while True:
            await asyncio.sleep(min(0.5, every / 4))
            now = time.monotonic()
            for conn in self.conns:
                if conn is not None and conn.state == "open" and now - conn.last_send >= every:
                    conn.send_text(HEARTBEAT)

    async def _lag_forever(self) -> None:
        while True:
            t = perf()
            await asyncio.sleep(0.05)
            lag = perf() - t - 0.05
            if lag > self.phase.loop_lag_max:
                self.phase.loop_lag_max = lag

    # -- population -------------------------------------------------------------------------------

    def _add_member(self, conn: WSConnection) -> None:
        self.members[conn.channel] = (*self.members.get(conn.channel, ()), conn)

    def _settled(self, channel: str) -> tuple[WSConnection, ...]:
        """Members that already hold their snapshot: every later change must reach them as a diff."""
        return tuple(c for c in self.members.get(channel, ()) if c.waiter is None and c.state == "open")

    def _remove_member(self, conn: WSConnection) -> None:
        current = self.members.get(conn.channel)
        if current and conn in current:
            self.members[conn.channel] = tuple(c for c in current if c is not conn)

    async def open_member(self, port: int, path: str, user: str, channel: str, slot: int, phase: Phase,
                          timeout_s: float = 30.0, track_join: bool = False) -> WSConnection | None:
        """Connect, wait for welcome, join `channel`, wait for the snapshot. None on failure (counted)."""
        t0 = perf()
        try:
            conn = await wsclient.connect(HOST, port, path, self.on_text, self.on_close, timeout_s)
        except Exception as exc:  # noqa: BLE001
            phase.errors[f"connect: {type(exc).__name__}"] += 1
            if len(phase.notes.setdefault("connect error samples", [])) < 3:
                phase.notes["connect error samples"].append(repr(exc)[:200])
            return None
        self.serial += 1
        conn.idx, conn.user, conn.channel, conn.slot, conn.seen, conn.tag = self.serial, user, channel, slot, {}, 0
        conn.last_send = time.monotonic()
        try:
            if conn.welcome_t is None:
                await self._wait(conn, "welcome", timeout_s)
            phase.extra("connect (TCP + upgrade + welcome)").append((conn.welcome_t or perf()) - t0)
            t1 = perf()
            loop = asyncio.get_running_loop()
            conn.waiter = ("snapshot", loop.create_future())
            if track_join:
                rec = Rec(phase, perf(), user, 0, "join -> seen by the other members")
                rec.members = self._settled(channel)
                rec.got = set()
                self.pending_joins[user] = rec
                phase.recs.append(rec)
            conn.send_text(orjson.dumps({"type": "join", "channel": channel, "ref": "j"}))
            self._add_member(conn)
            await asyncio.wait_for(conn.waiter[1], timeout_s)
            conn.waiter = None
            phase.extra("join -> snapshot").append(perf() - t1)
        except Exception as exc:  # noqa: BLE001
            phase.errors[f"join: {type(exc).__name__}"] += 1
            self.closing.add(conn.idx)
            conn.abort()
            self._remove_member(conn)
            return None
        return conn

    async def _wait(self, conn: WSConnection, kind: str, timeout_s: float) -> Any:
        future = asyncio.get_running_loop().create_future()
        conn.waiter = (kind, future)
        if kind == "welcome" and conn.welcome_t is not None:
            return None
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            conn.waiter = None

    async def populate(self, ports: list[int], path_of: Callable[[int, str], str], n: int, channel_size: int,
                       phase: Phase, concurrency: int, timeout_s: float) -> None:
        """Open n members, slot i as user u<i> in channel ch<i // channel_size>, spread over the ports."""
        self.conns = [None] * n
        sem = asyncio.Semaphore(concurrency)
        deadline = perf() + timeout_s

        async def one(i: int) -> None:
            async with sem:
                if perf() > deadline:
                    phase.errors["connect: skipped (populate deadline)"] += 1
                    return
                user, channel = f"u{i}", f"ch{i // channel_size}"
                self.conns[i] = await self.open_member(ports[i % len(ports)], path_of(i, user), user, channel, i,
                                                       phase)

        await asyncio.gather(*(one(i) for i in range(n)))

    async def settle(self, timeout_s: float) -> tuple[float, int]:
        """Wait until every member has been told its channel's full occupancy; (seconds, members not there)."""
        t0 = perf()
        while True:
            behind = 0
            for members in self.members.values():
                size = len(members)
                behind += sum(1 for c in members if c.occupancy != size)
            if behind == 0 or perf() - t0 > timeout_s:
                return perf() - t0, behind
            await asyncio.sleep(0.25)

    async def close_all(self, clean: bool, concurrency: int = 500) -> None:
        conns = [c for c in self.conns if c is not None]
        for c in conns:
            self.closing.add(c.idx)
        if not clean:
            for c in conns:
                c.abort()
        else:
            sem = asyncio.Semaphore(concurrency)

            async def one(c: WSConnection) -> None:
                async with sem:
                    await c.close(1000, timeout_s=5)

            await asyncio.gather(*(one(c) for c in conns))
        self.conns = []
        self.members = {}
        await asyncio.sleep(0.2)

    # -- updates ----------------------------------------------------------------------------------

    def open_others(self, conn: WSConnection) -> int:
        return sum(1 for c in self.members.get(conn.channel, ()) if c is not conn and c.state == "open")

    def send_update(self, phase: Phase, conn: WSConnection) -> None:
        seq = len(self.records)
        conn.tag ^= 1
        status = "away" if conn.tag else "online"
        rec = Rec(phase, perf(), conn.user, self.open_others(conn))
        self.records.append(rec)
        phase.recs.append(rec)
        if conn.send_text(orjson.dumps({"type": "update", "status": status, "status_text": f"b{seq}", "ref": seq})):
            phase.sent += 1
            phase.expected += rec.expected
        else:
            rec.expected = 0
            phase.errors["send on a closed connection"] += 1

    async def drive_updates(self, phase: Phase, senders: list[WSConnection], rate: float, duration_s: float) -> None:
        """Open loop: update number k is due at t0 + k / rate, senders taken round-robin."""
        total = int(rate * duration_s)
        phase.offered_rate = rate
        if not senders or total == 0:
            phase.send_end = perf()
            return
        t0 = perf()
        k = 0
        hard_stop = t0 + duration_s * 3 + 10
        while k < total and perf() < hard_stop:
            due = min(total, int((perf() - t0) * rate) + 1)
            while k < due:
                self.send_update(phase, senders[k % len(senders)])
                k += 1
            await asyncio.sleep(0.001)
        phase.send_end = perf()
        phase.notes["achieved_rate"] = k / max(1e-9, phase.send_end - t0)

    def burst(self, phase: Phase, senders: list[WSConnection]) -> None:
        """Every sender sends one update, all in one go (no await between them)."""
        for conn in senders:
            self.send_update(phase, conn)
        phase.send_end = perf()
        phase.notes["send_loop_s"] = phase.send_end - phase.t0

    # -- churn ------------------------------------------------------------------------------------

    async def churn(self, phase: Phase, ports: list[int], path_of: Callable[[int, str], str], rate: float,
                    duration_s: float, max_inflight: int = 3000, timeout_s: float = 30.0) -> None:
        """`rate` clean disconnects and `rate` connects (+ join) per second; the population size holds.

        Each step closes the member of a random slot and opens a fresh user in that slot's channel.
        The new user's join and the old user's leave are tracked until the other members see them.
        """
        total = int(rate * duration_s)
        phase.offered_rate = rate
        phase.tracked = True
        generation: Counter = Counter()
        busy: set[int] = set()
        tasks: set[asyncio.Task[None]] = set()
        slots = [i for i, c in enumerate(self.conns) if c is not None]

        async def leave(conn: WSConnection) -> None:
            t = perf()
            await conn.close(1000, timeout_s=10)
            phase.extra("close handshake").append(perf() - t)

        async def arrive(slot: int, user: str, channel: str) -> None:
            conn = await self.open_member(ports[slot % len(ports)], path_of(slot, user), user, channel, slot, phase,
                                          timeout_s, track_join=True)
            if conn is not None:
                phase.notes["connects"] = phase.notes.get("connects", 0) + 1
            self.conns[slot] = conn
            busy.discard(slot)

        t0 = perf()
        k = 0
        hard_stop = t0 + duration_s * 3 + 10
        while k < total and perf() < hard_stop:
            due = min(total, int((perf() - t0) * rate) + 1)
            while k < due:
                k += 1
                if len(tasks) >= max_inflight:
                    phase.errors["churn step skipped (too many in flight)"] += 1
                    continue
                slot = slots[self.rng.randrange(len(slots))]
                if slot in busy or self.conns[slot] is None:
                    phase.errors["churn step skipped (slot busy)"] += 1
                    continue
                old = self.conns[slot]
                assert old is not None
                busy.add(slot)
                self.closing.add(old.idx)
                self._remove_member(old)
                rec = Rec(phase, perf(), old.user, 0, "clean close -> leave seen by the other members")
                rec.members = self._settled(old.channel)
                rec.got = set()
                self.pending_leaves[old.user] = rec
                phase.recs.append(rec)
                generation[slot] += 1
                new_user = f"u{slot}g{generation[slot]}"
                for coro in (leave(old), arrive(slot, new_user, old.channel)):
                    task = asyncio.create_task(coro)
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                phase.sent += 1
            await asyncio.sleep(0.002)
        phase.send_end = perf()
        phase.notes["achieved_rate"] = k / max(1e-9, phase.send_end - t0)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 15)
        phase.expected = sum(sum(1 for c in r.members if c.user != r.user) for r in phase.recs)

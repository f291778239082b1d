"""`python -m bench.run [--quick]`: the benchmark of issue 4, end to end, on this machine.

Starts a broker of its own (Apache Kafka), the workers and the edges as processes (bench.stack), measures the two
floors (Kafka two-hop, and a bare Starlette fan-out server), then holds a population of WebSocket
members (bench.wsclient) in channels and runs the workloads: idle, steady (+ REST), a rate ramp,
burst and churn. Writes results.json, report.md and PNG plots to bench/results/<run>/.

Reference sizes are the issue's; `--quick` uses small ones (under 2 minutes). Every size is an option.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from bench import report
from bench.kafka_side import census, kafka_floor
from bench.load import Harness, Phase, perf
from bench.replay import replay
from bench.stack import ROOT, ProcessMonitor, Stack, StackConfig, spawn_python, stop_process
from bench.timeline import Timeline
from services.broker import free_port

RESULTS = ROOT / "bench" / "results"
REPLAY_MAX_RECORDS = 20_000  # records of presence.events replayed after the run (the first ones)
WORKLOADS = ("floors", "idle", "steady", "rest", "ramp", "burst", "churn")


@dataclass
class Sizes:
    connections: int = 10_000
    channel_size: int = 20
    rate: float = 1000.0  # steady updates/s offered
    steady_s: float = 60.0
    churn_rate: float = 500.0  # connects/s and disconnects/s
    churn_s: float = 60.0
    rest_get_rate: float = 50.0
    rest_post_rate: float = 10.0
    floor_s: float = 20.0
    idle_s: float = 20.0
    ramp_rates: list[float] = field(default_factory=lambda: [250, 500, 1000, 2000, 3500, 5000])
    ramp_step_s: float = 15.0
    drain_s: float = 30.0
    burst_drain_s: float = 180.0
    settle_s: float = 180.0
    connect_concurrency: int = 100
    populate_s: float = 300.0
    quiesce_s: float = 60.0  # longest wait for the previous workload's backlog before the next one


REFERENCE = Sizes()
QUICK = Sizes(connections=1000, rate=100, steady_s=10, churn_rate=50, churn_s=8, rest_get_rate=20,
              rest_post_rate=5, floor_s=4, idle_s=5, ramp_rates=[200], ramp_step_s=4, drain_s=10,
              burst_drain_s=20, settle_s=30, connect_concurrency=50, populate_s=40, quiesce_s=10)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, under 2 minutes")
    for name, value in asdict(REFERENCE).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, list):
            p.add_argument(flag, type=float, nargs="*", default=None, help=f"reference: {value}")
        else:
            p.add_argument(flag, type=type(value), default=None, help=f"reference: {value}")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--edges", type=int, default=1)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--heartbeat-s", type=float, default=10.0)
    p.add_argument("--timeout-s", type=float, default=30.0)
    p.add_argument("--skip", nargs="*", default=[], choices=WORKLOADS, help="workloads to leave out")
    p.add_argument("--profile", action="store_true",
                   help="py-spy record the workers and edges during steady (perturbs the figures)")
    p.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE", help="extra env for workers and edges")
    p.add_argument("--label", default="", help="added to the results folder name")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    base = QUICK if args.quick else REFERENCE
    values = asdict(base)
    for name in values:
        given = getattr(args, name)
        if given is not None:
            values[name] = given
    return Sizes(**values)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": os.getloadavg(),
        "date_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "git": _git(),
    }


def _git() -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
            return done.stdout.rstrip("\n")
        except (OSError, subprocess.TimeoutExpired):
            return ""

    dirty = [line for line in run("status", "--short").splitlines() if not line[3:].startswith("bench/")]
    return {"head": run("rev-parse", "--short", "HEAD").strip(), "dirty_outside_bench": dirty}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sizes = sizes_from(args)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        kind = "quick" if args.quick else "reference"
        self.name = f"{stamp}-{kind}{'-' + args.label if args.label else ''}"
        self.out = RESULTS / self.name
        self.logs = self.out / "logs"
        self.run_id = f"{stamp}-{os.getpid()}"
        extra_env = dict(kv.split("=", 1) for kv in args.env)
        self.stack = Stack(StackConfig(workers=args.workers, edges=args.edges, partitions=args.partitions,
                                       heartbeat_s=args.heartbeat_s, timeout_s=args.timeout_s,
                                       extra_env=extra_env), self.logs, self.run_id)
        self.monitor = ProcessMonitor()
        self.harness = Harness(args.heartbeat_s, args.seed)
        self.phases: list[Phase] = []
        self.timeline: Timeline | None = None
        self.results: dict[str, Any] = {
            "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
            "sizes": asdict(self.sizes),
            "stack": {"workers": args.workers,
                      "edges": args.edges, "partitions": args.partitions, "heartbeat_s": args.heartbeat_s,
                      "timeout_s": args.timeout_s, "extra_env": extra_env},
            "machine": machine(),
            "phases": {},
        }
        self.skip = set(args.skip)

    # -- helpers ----------------------------------------------------------------------------------

    def ws_path(self, user: str) -> str:
        return f"/realtime/ws?token={self.harness.tokens.setdefault(user, self.stack.token(user))}"

    def edge_ports(self) -> list[int]:
        return [e.port for e in self.stack.edges if e.port is not None]

    def begin(self, name: str, waited: float | None = None) -> tuple[Phase, Any]:
        log(f"{name} ...")
        self.stack.check_alive()
        phase = self.harness.begin(name)
        if waited is not None:
            phase.notes["waited for the previous backlog (s)"] = waited
        return phase, self.monitor.window()

    async def quiet(self) -> float:
        """Let the previous workload's backlog through (no frame for 2 s), within `quiesce_s`."""
        return await self.harness.quiesce(2.0, self.sizes.quiesce_s)

    def finish(self, phase: Phase, window: Any) -> dict[str, Any]:
        self.harness.end(phase)
        phase.usage = {k: v.__dict__ | {"cpu_pct": v.cpu_pct} for k, v in window.close().items()}
        self.phases.append(phase)
        summary = report.summarize(phase)
        self.results["phases"][phase.name] = summary
        lat = summary["latency"]
        log(f"{phase.name}: sent {phase.sent:,}, deliveries {phase.received:,}/{phase.expected:,}"
            f" (missing {phase.missing:,}), p50 {report._f(lat['p50_ms'])} ms, p99 {report._f(lat['p99_ms'])} ms,"
            f" max {report._f(lat['max_ms'])} ms, errors {summary['error_count']}")
        return summary

    # -- the run ----------------------------------------------------------------------------------

    async def main(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.results["machine"]["nofile_limit"] = hard
        gc.set_threshold(50_000, 50, 100)
        self.monitor.add("load generator", os.getpid())
        self.monitor.start()
        t_start = perf()
        try:
            log(f"results in {self.out}")
            log("starting broker, workers, edges ...")
            await self.stack.start()
            for named in self.stack.processes():
                self.monitor.add(named.name, named.process.pid)
            self.harness.start_background(heartbeats=False)
            self.timeline = Timeline(self.stack.bootstrap, self.edge_ports(), self.harness)
            await self.timeline.start()
            await self.wait_flowing()
            if "floors" not in self.skip:
                await self.floors()
            if set(WORKLOADS[1:]) <= self.skip:
                return await self.finish_run()
            await self.population()
            if "idle" not in self.skip:
                await self.idle()
            if "steady" not in self.skip:
                await self.repair()
                await self.steady()
            if "ramp" not in self.skip and self.sizes.ramp_rates:
                await self.repair()
                await self.ramp()
            if "burst" not in self.skip:
                await self.repair()
                await self.burst()
            if "churn" not in self.skip:
                await self.repair()
                await self.churn()
            await self.finish_run()
        finally:
            self.results["wall_s"] = perf() - t_start
            self.results["machine"]["loadavg_at_end"] = os.getloadavg()
            with contextlib.suppress(Exception):
                await self.harness.stop_background()
            if self.timeline is not None:
                with contextlib.suppress(Exception):
                    await self.timeline.stop()
            log("stopping the stack ...")
            self.stack.stop()
            self.monitor.stop()
            self.write()

    async def finish_run(self) -> None:
        log("closing the population ...")
        await self.harness.close_all(clean=False)
        await self.harness.stop_background()
        if self.timeline is not None:
            await self.timeline.stop()
        await self.after()

    async def wait_flowing(self, timeout_s: float = 120) -> None:
        """Presence flows once a probe's own join comes back as a diff through the processor."""
        log("waiting for presence to flow through the processor ...")
        phase = self.harness.begin("startup")
        t0 = perf()
        for port in self.edge_ports():
            user = f"probe-{port}"
            conn = await self.harness.open_member(port, self.ws_path(user), user, f"probe-{port}", -1, phase)
            if conn is None:
                raise RuntimeError(f"probe could not connect: {dict(phase.errors)} {phase.notes}")
            while conn.occupancy < 1:
                self.stack.check_alive()
                if perf() - t0 > timeout_s:
                    raise TimeoutError("presence did not flow within the timeout; see the worker log")
                await asyncio.sleep(0.1)
            self.harness.closing.add(conn.idx)
            await conn.close()
            self.harness.members.pop(conn.channel, None)
        self.results["startup_flow_s"] = perf() - t0
        log(f"presence flows ({perf() - t0:.1f} s after the edges were ready)")

    async def floors(self) -> None:
        s = self.sizes
        for hops in (2, 3):
            phase, _ = self.begin(f"floor: Kafka {hops}-hop")
            await kafka_floor(phase, self.stack.bootstrap, self.args.partitions, hops, s.rate, s.floor_s, self.logs,
                              self.monitor)
            self.phases.append(phase)
            self.results["phases"][phase.name] = summary = report.summarize(phase)
            log(f"{phase.name}: p50 {report._f(summary['latency']['p50_ms'])} ms,"
                f" p99 {report._f(summary['latency']['p99_ms'])} ms, missing {phase.missing}")
        # the fan-out floor: same connections, channels and frames, no Kafka
        port = free_port()
        server = spawn_python(self.logs, "floor-fanout-server", "-m", "bench.floors", "fanout", str(port))
        self.monitor.add("floor fan-out server", server.pid)
        try:
            await _wait_port(port, 30, server)
            phase, window = self.begin("floor: fan-out connect")
            rss0 = self.monitor.rss("load generator")
            t0 = perf()
            await self.harness.populate([port], lambda i, u: f"/ws?user={u}", s.connections, s.channel_size,
                                        phase, s.connect_concurrency, s.populate_s)
            connected = sum(1 for c in self.harness.conns if c is not None)
            phase.notes["connected"] = connected
            phase.notes["connect_s"] = perf() - t0
            await asyncio.sleep(1)
            self.monitor.sample()
            phase.notes["load_generator_rss_per_connection_kib"] = (
                (self.monitor.rss("load generator") - rss0) / max(1, connected) / 1024)
            self.finish(phase, window)
            phase, window = self.begin("floor: fan-out")
            senders = [c for c in self.harness.conns if c is not None]
            random.Random(self.args.seed).shuffle(senders)
            await self.harness.drive_updates(phase, senders, s.rate, s.floor_s)
            await self.harness.drain([phase], s.drain_s)
            self.finish(phase, window)
        finally:
            await self.harness.close_all(clean=False)
            stop_process(server)
            self.monitor.remove("floor fan-out server")

    async def population(self) -> None:
        s = self.sizes
        self.monitor.sample()
        self.edge_rss_before = {e.name: self.monitor.rss(e.name) for e in self.stack.edges}
        self.loadgen_rss_before = self.monitor.rss("load generator")
        phase, window = self.begin("connect")
        t0 = perf()
        await self.harness.populate(self.edge_ports(), lambda i, u: self.ws_path(u), s.connections, s.channel_size,
                                    phase, s.connect_concurrency, s.populate_s)
        connected = sum(1 for c in self.harness.conns if c is not None)
        phase.notes["connected"] = connected
        phase.notes["connect_s"] = perf() - t0
        phase.notes["connects_per_s"] = connected / (perf() - t0)
        self.harness.start_background(heartbeats=True)
        log(f"{connected:,} connected in {perf() - t0:.1f} s; waiting for every member to see its full channel ...")
        settle_s, behind = await self.harness.settle(s.settle_s)
        phase.notes["settle_s"] = settle_s
        phase.notes["members_not_settled"] = behind
        self.finish(phase, window)
        log(f"settled in {settle_s:.1f} s ({behind} members not settled)")
        gc.collect()
        gc.freeze()

    async def repair(self) -> None:
        """Reconnect members the previous workload lost (closed by the server), so each workload starts whole."""
        s = self.sizes
        lost = [i for i, c in enumerate(self.harness.conns) if c is None or c.state != "open"]
        if not lost:
            return
        phase, window = self.begin("reconnect")
        phase.notes["lost"] = len(lost)
        sem = asyncio.Semaphore(s.connect_concurrency)
        deadline = perf() + s.populate_s

        async def one(i: int) -> None:
            async with sem:
                if perf() > deadline:
                    phase.errors["connect: skipped (deadline)"] += 1
                    return
                old = self.harness.conns[i]
                if old is not None:
                    self.harness.closing.add(old.idx)
                    old.abort()
                    self.harness._remove_member(old)
                user, channel = f"u{i}", f"ch{i // s.channel_size}"
                self.harness.conns[i] = await self.harness.open_member(
                    self.edge_ports()[i % len(self.edge_ports())], self.ws_path(user), user, channel, i, phase)

        await asyncio.gather(*(one(i) for i in lost))
        phase.notes["reconnected"] = sum(1 for i in lost if self.harness.conns[i] is not None)
        settle_s, behind = await self.harness.settle(s.settle_s)
        phase.notes["settle_s"], phase.notes["members_not_settled"] = settle_s, behind
        self.finish(phase, window)

    async def idle(self) -> None:
        s = self.sizes
        phase, window = self.begin("idle")
        written0 = await self.stack.metric_sum("presence_events_written_total")
        await asyncio.sleep(s.idle_s)
        written1 = await self.stack.metric_sum("presence_events_written_total")
        self.monitor.sample()
        connected = sum(1 for c in self.harness.conns if c is not None and c.state == "open")
        phase.notes["connected"] = connected
        phase.notes["events_written_per_s (edge metric)"] = (written1 - written0) / s.idle_s
        for e in self.stack.edges:
            per = (self.monitor.rss(e.name) - self.edge_rss_before[e.name]) / max(1, connected / len(self.stack.edges))
            phase.notes[f"{e.name} rss_per_connection_kib"] = per / 1024
            phase.notes[f"{e.name} rss_mib"] = self.monitor.rss(e.name) / 2**20
        phase.notes["load_generator_rss_per_connection_kib (incl. harness bookkeeping)"] = (
            (self.monitor.rss("load generator") - self.loadgen_rss_before) / max(1, connected) / 1024)
        self.finish(phase, window)

    async def steady(self) -> None:
        s = self.sizes
        conns = [c for c in self.harness.conns if c is not None]
        rest = "rest" not in self.skip and (s.rest_post_rate > 0 or s.rest_get_rate > 0)
        rest_users = [c for c in conns if c.slot % 50 == 49] if rest else []
        senders = [c for c in conns if c not in set(rest_users)]
        random.Random(self.args.seed).shuffle(senders)
        phase, window = self.begin("steady", await self.quiet())
        get_phase = Phase("rest: GET channel presence")
        post_phase = Phase("rest: POST presence update")
        profilers = self.start_profilers(s.steady_s) if self.args.profile else []
        tasks = [asyncio.create_task(self.harness.drive_updates(phase, senders, s.rate, s.steady_s))]
        if rest:
            tasks.append(asyncio.create_task(self.rest_load(get_phase, post_phase, rest_users, s.steady_s)))
        await asyncio.gather(*tasks)
        await self.harness.drain([phase, post_phase], s.drain_s)
        summary = self.finish(phase, window)
        for p in (get_phase, post_phase) if rest else ():
            p.frames_start = p.frames_end = 0
            self.harness.end(p)
            self.phases.append(p)
            self.results["phases"][p.name] = report.summarize(p)
            h = self.results["phases"][p.name]["http_latency"]
            log(f"{p.name}: {p.sent} requests, HTTP p50 {report._f(h['p50_ms'])} ms p99 {report._f(h['p99_ms'])} ms,"
                f" status {dict(p.http_status)}")
        for proc in profilers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
        if profilers:
            self.summarize_profiles()
        self.results["steady_summary"] = summary

    async def rest_load(self, get_phase: Phase, post_phase: Phase, users: list, duration_s: float) -> None:
        import httpx

        s = self.sizes
        rng = random.Random(self.args.seed + 1)
        ports = self.edge_ports()
        clients = {p: httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=10,
                                        limits=httpx.Limits(max_connections=32, max_keepalive_connections=32))
                   for p in ports}
        channels = sorted({c.channel for c in self.harness.conns if c is not None})
        inflight: set[asyncio.Task[None]] = set()
        get_phase.offered_rate, post_phase.offered_rate = s.rest_get_rate, s.rest_post_rate

        async def do_get() -> None:
            user = self.harness.conns[rng.randrange(len(self.harness.conns))]
            if user is None:
                return
            client = clients[ports[user.slot % len(ports)]]
            token = self.harness.tokens[user.user]
            t = perf()
            try:
                r = await client.get(f"/realtime/channels/{rng.choice(channels)}/presence",
                                     headers={"authorization": f"Bearer {token}"})
                get_phase.http_status[r.status_code] += 1
            except Exception as exc:  # noqa: BLE001
                get_phase.errors[f"http: {type(exc).__name__}"] += 1
                return
            get_phase.http_lat.append(perf() - t)

        post_i = 0

        async def do_post(conn: Any) -> None:
            from bench.load import Rec

            h = self.harness
            seq = len(h.records)
            conn.tag ^= 1
            rec = Rec(post_phase, perf(), conn.user, h.open_others(conn))
            h.records.append(rec)
            post_phase.recs.append(rec)
            post_phase.sent += 1
            post_phase.expected += rec.expected
            body = {"status": "away" if conn.tag else "online", "status_text": f"r{seq}"}
            client = clients[ports[conn.slot % len(ports)]]
            try:
                r = await client.post("/realtime/presence/update", content=orjson.dumps(body),
                                      headers={"authorization": f"Bearer {h.tokens[conn.user]}",
                                               "content-type": "application/json"})
                post_phase.http_status[r.status_code] += 1
                ok = r.status_code == 200
            except Exception as exc:  # noqa: BLE001
                post_phase.errors[f"http: {type(exc).__name__}"] += 1
                ok = False
            if ok:
                post_phase.http_lat.append(perf() - rec.t)
            else:
                post_phase.expected -= rec.expected
                rec.expected = 0

        def launch(coro: Any, phase: Phase) -> None:
            if len(inflight) >= 200:
                phase.errors["request skipped (200 in flight)"] += 1
                coro.close()
                return
            task = asyncio.create_task(coro)
            inflight.add(task)
            task.add_done_callback(inflight.discard)

        t0 = perf()
        n_get = int(s.rest_get_rate * duration_s)
        n_post = int(s.rest_post_rate * duration_s) if users else 0
        k_get = k_post = 0
        while (k_get < n_get or k_post < n_post) and perf() < t0 + duration_s * 3 + 10:
            elapsed = perf() - t0
            while k_get < min(n_get, int(elapsed * s.rest_get_rate) + 1):
                get_phase.sent += 1
                launch(do_get(), get_phase)
                k_get += 1
            while k_post < min(n_post, int(elapsed * s.rest_post_rate) + 1):
                launch(do_post(users[post_i % len(users)]), post_phase)
                post_i += 1
                k_post += 1
            await asyncio.sleep(0.005)
        get_phase.send_end = post_phase.send_end = perf()
        if inflight:
            await asyncio.wait(inflight, timeout=30)
        for c in clients.values():
            await c.aclose()

    async def ramp(self) -> None:
        s = self.sizes
        steps = []
        best = None
        for rate in s.ramp_rates:
            if steps:
                await self.repair()
            conns = [c for c in self.harness.conns if c is not None and c.state == "open"]
            random.Random(self.args.seed + 2).shuffle(conns)
            phase, window = self.begin(f"ramp {rate:g}/s", await self.quiet())
            await self.harness.drive_updates(phase, conns, rate, s.ramp_step_s)
            await self.harness.drain([phase], s.drain_s)
            summary = self.finish(phase, window)
            p99 = summary["latency"]["p99_ms"]
            achieved = summary["achieved_rate"] or 0
            ok = p99 is not None and p99 <= 50 and phase.missing == 0 and achieved >= 0.95 * rate
            steps.append({"rate": rate, "p50_ms": summary["latency"]["p50_ms"], "p99_ms": p99,
                          "missing": phase.missing, "achieved_rate": achieved, "ok": ok})
            if ok:
                best = rate
            else:
                break
        self.results["ramp"] = {"steps": steps, "max_rate_p99_le_50ms": best}

    async def burst(self) -> None:
        s = self.sizes
        conns = [c for c in self.harness.conns if c is not None and c.state == "open"]
        random.Random(self.args.seed + 3).shuffle(conns)
        phase, window = self.begin("burst", await self.quiet())
        self.harness.burst(phase, conns)
        await self.harness.drain([phase], s.burst_drain_s, stall_s=30)
        last = max((t + lat for t, lat in zip(phase.at, phase.lat, strict=True)), default=0.0)
        if last > 0:
            phase.notes["time_to_last_delivery_s"] = last
            complete = sum(1 for rec in phase.recs if rec.expected and rec.received >= rec.expected)
            phase.notes["updates delivered to every member"] = complete
            phase.notes["updates_fully_delivered_per_s"] = complete / last
        self.finish(phase, window)

    async def churn(self) -> None:
        s = self.sizes
        phase, window = self.begin("churn", await self.quiet())
        await self.harness.churn(phase, self.edge_ports(), lambda i, u: self.ws_path(u), s.churn_rate, s.churn_s)
        await self.harness.drain([phase], s.drain_s, stall_s=10)
        phase.notes["joins"] = sum(1 for r in phase.recs if r.kind.startswith("join"))
        phase.notes["leaves"] = sum(1 for r in phase.recs if not r.kind.startswith("join"))
        self.finish(phase, window)
        self.harness.pending_joins.clear()
        self.harness.pending_leaves.clear()

    async def after(self) -> None:
        windows = {p.name: (p.t0_epoch_ms, p.t_end_epoch_ms) for p in self.phases if p.t_end_epoch_ms}
        log("census of the topics (after the load) ...")
        values: list[bytes] = []
        self.results["census"] = await census(self.stack.bootstrap, windows, keep_events=values)
        records = len(values)
        values = values[:REPLAY_MAX_RECORDS]
        log(f"replaying {len(values):,} of {records:,} records of presence.events through the pure cores ...")
        self.results["replay"] = replay(values)
        log(f"replay: {self.results['replay']['core_events_per_s'] or 0:,.0f} events/s (stage 1 core)")

    # -- profiling --------------------------------------------------------------------------------

    def start_profilers(self, duration_s: float) -> list[subprocess.Popen[bytes]]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            log("py-spy not found; no profile")
            return []
        procs = []
        for named in [*self.stack.workers, *self.stack.edges]:
            out = self.out / f"profile-{named.name}.txt"
            procs.append(subprocess.Popen(
                [spy, "record", "--pid", str(named.process.pid), "--duration", str(int(duration_s)), "--rate", "200",
                 "--format", "raw", "--nonblocking", "--output", str(out)],
                stdout=subprocess.DEVNULL, stderr=open(self.logs / f"py-spy-{named.name}.log", "wb")))  # noqa: SIM115
        return procs

    def summarize_profiles(self) -> None:
        from bench.profile import summarize

        self.results["profiles"] = {}
        for path in sorted(self.out.glob("profile-*.txt")):
            self.results["profiles"][path.stem] = summarize(path)

    # -- output -----------------------------------------------------------------------------------

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        try:
            self.results["plots"] = report.plots(self.phases, self.out)
            self.results["plots"].append(report.cpu_plot(list(self.results["phases"].values()), self.out))
            if self.timeline is not None and self.timeline.samples:
                self.timeline.plot(self.out / "timeline.png")
                self.results["plots"].append("timeline.png")
        except Exception as exc:  # noqa: BLE001
            self.results["plots_error"] = repr(exc)
        if self.timeline is not None:
            self.results["timeline"] = self.timeline.samples
        self.results["targets"] = targets(self.results)
        (self.out / "results.json").write_bytes(orjson.dumps(self.results, option=orjson.OPT_INDENT_2,
                                                             default=_jsonable))
        (self.out / "report.md").write_text(markdown(self.results, self.name))
        latest = RESULTS / "latest"
        with contextlib.suppress(OSError):
            if latest.is_symlink() or latest.exists():
                latest.unlink()
            latest.symlink_to(self.out.name)
        log(f"wrote {self.out / 'report.md'}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, tuple | set):
        return list(obj)
    return repr(obj)


async def _wait_port(port: int, timeout_s: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the floor server exited")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


# -- targets and the markdown report --------------------------------------------------------------


def _get(results: dict[str, Any], phase: str, *path: str) -> Any:
    node: Any = results["phases"].get(phase)
    for key in path:
        if node is None:
            return None
        node = node.get(key)
    return node


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def add(target: str, measured: str, met: bool | None) -> None:
        out.append({"target": target, "measured": measured, "met": met})

    p50 = _get(r, "steady", "latency", "p50_ms")
    p99 = _get(r, "steady", "latency", "p99_ms")
    rate = r["sizes"]["rate"]
    if p50 is not None:
        add(f"steady ({r['sizes']['connections']:,} conns, {rate:g}/s): p50 <= 15 ms", f"{p50:.1f} ms", p50 <= 15)
        add("steady: p99 <= 50 ms", f"{p99:.1f} ms", p99 <= 50)
        add("steady: stretch p99 <= 25 ms", f"{p99:.1f} ms", p99 <= 25)
    rest50 = _get(r, "rest: POST presence update", "latency", "p50_ms")
    rest99 = _get(r, "rest: POST presence update", "latency", "p99_ms")
    if rest50 is not None:
        add("REST update -> members: p50 <= 15 ms, p99 <= 50 ms", f"{rest50:.1f} / {rest99:.1f} ms",
            rest50 <= 15 and rest99 <= 50)
    churn99 = _get(r, "churn", "latency", "p99_ms")
    if churn99 is not None:
        add(f"churn ({r['sizes']['churn_rate']:g} connects + closes/s): joins and leaves seen, p99 <= 100 ms",
            f"{churn99:,.1f} ms", churn99 <= 100)
    missing = _get(r, "burst", "deliveries_missing")
    bp99 = _get(r, "burst", "latency", "p99_ms")
    if missing is not None:
        sent = _get(r, "burst", "sent")
        population = r["sizes"]["connections"]
        add(f"burst ({sent:,} of {population:,} users update at once): every update delivered to every member",
            f"{_get(r, 'burst', 'deliveries_received'):,} of {_get(r, 'burst', 'deliveries_expected'):,}"
            f" deliveries ({missing:,} missing)",
            missing == 0 and sent == population and _get(r, "burst", "deliveries_expected") > 0)
        if bp99 is not None:
            add("burst: p99 <= 1 s", f"{bp99:,.0f} ms", bp99 <= 1000)
            add("burst: stretch p99 <= 500 ms", f"{bp99:,.0f} ms", bp99 <= 500)
    if "ramp" in r:
        best = r["ramp"]["max_rate_p99_le_50ms"]
        steps = ", ".join(f"{s['rate']:g}/s: p99 {report._f(s['p99_ms'])} ms" for s in r["ramp"]["steps"])
        add("max sustained update rate with p99 <= 50 ms >= 5,000/s",
            f"{best:g}/s" if best else f"none of the steps ({steps})", bool(best and best >= 5000))
    floor = _get(r, "floor: Kafka 2-hop", "latency", "p50_ms")
    if p50 is not None and floor:
        add("steady e2e p50 <= 2x Kafka two-hop floor p50", f"{p50:.1f} ms vs floor {floor:.1f} ms"
            f" = {p50 / floor:.1f}x", p50 <= 2 * floor)
    burst_tput = _get(r, "burst", "notes", "updates_fully_delivered_per_s")
    if not _get(r, "burst", "deliveries_received"):
        burst_tput = None
    workers = r["stack"]["workers"]
    if burst_tput:
        add("processor >= 10,000 presence events/s per worker (within latency targets)",
            f"burst: {burst_tput:,.0f} updates/s end to end with {workers} worker(s)", burst_tput / workers >= 10000)
    rp = r.get("replay") or {}
    if rp.get("core_events_per_s"):
        add("replay of the log through the pure core >= 200,000 events/s",
            f"{rp['core_events_per_s']:,.0f} events/s (stage 1), {rp['core_and_channels_events_per_s']:,.0f}/s with"
            f" the channel stage, {rp['decode_core_channels_events_per_s']:,.0f}/s with decoding",
            rp["core_events_per_s"] >= 200000)
    idle = r["phases"].get("idle")
    if idle:
        kib = [v for k, v in idle["notes"].items() if k.endswith("rss_per_connection_kib")]
        add("idle connections cost <= 30 KiB each at the edge", ", ".join(f"{v:.1f} KiB" for v in kib),
            all(v <= 30 for v in kib))
        c = r.get("census", {}).get("per_window", {}).get("idle", {})
        ev = c.get("events")
        secs = idle["window_s"]
        if ev is not None:
            records = sum(n for topic, n in c.items() if topic not in ("events", "heartbeat events"))
            add("idle: <= 10 log records/s in total, every topic and changelog",
                f"{records / secs:,.1f} records/s ({c.get('presence.events', 0) / secs:,.1f} on presence.events,"
                f" holding {ev / secs:,.1f} events/s)", records / secs <= 10)
    add("horizontal scale: 1, 2, 4 workers and 1, 2 edges", f"this run: {workers} worker(s),"
        f" {r['stack']['edges']} edge(s)", None)
    return out


def markdown(r: dict[str, Any], name: str) -> str:
    m = r["machine"]
    phases = list(r["phases"].values())
    floors = {"kafka2": _get(r, "floor: Kafka 2-hop", "latency", "p50_ms"),
              "fanout": _get(r, "floor: fan-out", "latency", "p50_ms")}
    lat_rows = [p for p in phases if p["latency"]["n"] or p["deliveries_expected"]]
    lines = [
        f"# Benchmark run {name}",
        "",
        f"- command: `{r['command']}`",
        f"- machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']},"
        f" {m['platform']}; load average at start {m['loadavg_at_start']}, at end {m.get('loadavg_at_end')}",
        f"- date: {m['date_utc']}; wall time {r.get('wall_s', 0):.0f} s",
        f"- code: commit {m['git']['head']}" + _dirty(m["git"]["dirty_outside_bench"]),
        f"- sizes: `{orjson.dumps(r['sizes']).decode()}`",
        f"- stack: `{orjson.dumps(r['stack']).decode()}`",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *[f"| {t['target']} | {t['measured']} | {({True: 'yes', False: 'no', None: 'not measured'})[t['met']]} |"
          for t in r.get("targets", [])],
        "",
        "## Latency: update sent -> matching change received, per receiving member",
        "",
        report.latency_table(lat_rows, floors),
        "",
        "## Other latencies",
        "",
        report.extra_table(phases),
        "",
        "## CPU (% of one core) / peak RSS per process",
        "",
        report.usage_table([p for p in phases if p["usage"]]),
        "",
    ]
    if "ramp" in r:
        lines += ["## Ramp", "", "| offered/s | achieved/s | p50 ms | p99 ms | missing | p99 <= 50 ms |",
                  "|---|---|---|---|---|---|"]
        for s in r["ramp"]["steps"]:
            lines.append(f"| {s['rate']:g} | {s['achieved_rate']:,.0f} | {report._f(s['p50_ms'])} |"
                         f" {report._f(s['p99_ms'])} | {s['missing']:,} | {'yes' if s['ok'] else 'no'} |")
        lines.append("")
    notes = {p["name"]: p["notes"] for p in phases if p["notes"]}
    if notes:
        lines += ["## Notes per workload", ""]
        for n, v in notes.items():
            lines.append(f"- **{n}**: " + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()))
        lines.append("")
    errors = {p["name"]: p["errors"] for p in phases if p["errors"]}
    if errors:
        lines += ["## Errors", ""] + [f"- **{n}**: {e}" for n, e in errors.items()] + [""]
    if "census" in r:
        lines += ["## Kafka records per workload window (by record timestamp)", "",
                  "| window | " + " | ".join(sorted({k for c in r["census"]["per_window"].values() for k in c})) + " |"]
        keys = sorted({k for c in r["census"]["per_window"].values() for k in c})
        lines.append("|" + "|".join(["---"] * (len(keys) + 1)) + "|")
        for w, c in r["census"]["per_window"].items():
            lines.append(f"| {w} | " + " | ".join(f"{c.get(k, 0):,}" for k in keys) + " |")
        lines.append("")
    if "replay" in r:
        lines += ["## Replay through the pure cores", "", f"`{orjson.dumps(r['replay']).decode()}`", ""]
    if "profiles" in r:
        lines += ["## Profiles (py-spy, during steady)", ""]
        for n, prof in r["profiles"].items():
            lines += [f"### {n}", "", prof["markdown"], ""]
    lines += ["## Plots", "", *[f"![{p}]({p})" for p in r.get("plots", [])], ""]
    return "\n".join(lines)


def _dirty(lines: list[str]) -> str:
    return f", with uncommitted changes in {', '.join(x[3:] for x in lines)}" if lines else ""


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:,.2f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(Run(args).main())
    else:
        uvloop.run(Run(args).main())


if __name__ == "__main__":
    main()

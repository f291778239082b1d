"""Faust's processing guarantees compared on the service: `python -m bench.guarantee`.

For each guarantee (`at_least_once`, the service's, whose redo machinery makes the folds exact; and
Faust's `exactly_once`, transactions), one stack of its own (Apache Kafka, one worker, one edge):
members in channels send status updates over WebSocket at a steady rate; every member of the
channel (the sender too) times each update from its send to its diff. A member that misses a diff
gets a snapshot instead (a gap in `seq`): counted as resyncs. Reports latency, deliveries and the worker's
CPU. The edge reads committed records only, so under transactions it sees a fold's output when
the worker commits it (every `--commit-interval` seconds).
Bounded: `--seconds` of load at `--rate`, at most 30 s of drain; load to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import time
from pathlib import Path

import orjson
import psutil
import websockets

from bench.stack import Stack, StackConfig


async def measure(guarantee: str, commit_interval_s: float, channels: int, members: int, rate: float,
                  seconds: float) -> dict[str, object]:
    run_id = f"{guarantee}-{commit_interval_s:g}"
    stack = Stack(StackConfig(extra_env={"PRESENCE_PROCESSING_GUARANTEE": guarantee,
                                         "BROKER_COMMIT_INTERVAL": str(commit_interval_s)}),
                  Path("bench/results/guarantee") / run_id / "logs", run_id)
    started = time.monotonic()
    await stack.start()
    ready_s = time.monotonic() - started
    edge = stack.edges[0]
    sent: dict[str, float] = {}
    latencies: list[float] = []
    resyncs = [0]
    expected = 0
    sockets: list[tuple[str, object]] = []

    async def receive(ws: websockets.ClientConnection) -> None:
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame.get("type") == "presence.snapshot" and sent:
                resyncs[0] += 1
            if frame.get("type") == "presence.diff":
                now = time.perf_counter()
                for member in frame.get("updates", ()):
                    token = member.get("status_text")
                    if token in sent:
                        latencies.append((now - sent[token]) * 1000)

    readers = []
    try:
        for c, m in itertools.product(range(channels), range(members)):
            user = f"u{c}-{m}"
            ws = await websockets.connect(f"ws://127.0.0.1:{edge.port}/realtime/ws?token={stack.token(user)}")
            await ws.recv()  # welcome
            await ws.send(orjson.dumps({"type": "join", "channel": f"ch{c}"}).decode())
            sockets.append((f"ch{c}", ws))
            readers.append(asyncio.create_task(receive(ws)))
        await asyncio.sleep(3)  # every join folded and shown
        worker = psutil.Process(stack.workers[0].process.pid)
        cpu_before = sum(worker.cpu_times()[:2])
        began = time.monotonic()
        for n in range(int(rate * seconds)):
            _, ws = sockets[n % len(sockets)]
            token = f"t{n}"
            sent[token] = time.perf_counter()
            expected += members
            await ws.send(orjson.dumps({"type": "update", "status_text": token}).decode())  # type: ignore[attr-defined]
            await asyncio.sleep(max(0.0, began + (n + 1) / rate - time.monotonic()))
        load_s = time.monotonic() - began
        for _ in range(150):  # the drain: at most 30 s
            if len(latencies) >= expected:
                break
            await asyncio.sleep(0.2)
        worker_cpu = (sum(worker.cpu_times()[:2]) - cpu_before) / load_s * 100
    finally:
        for task in readers:
            task.cancel()
        for _, ws in sockets:
            await ws.close()  # type: ignore[attr-defined]
        stack.stop()
    latencies.sort()
    return {
        "guarantee": guarantee, "commit interval (s)": commit_interval_s, "ready after (s)": round(ready_s, 1),
        "updates": int(rate * seconds), "deliveries (got/expected)": f"{len(latencies)}/{expected}",
        "resyncs (snapshots after a gap)": resyncs[0],
        "p50 (ms)": round(statistics.median(latencies), 1) if latencies else None,
        "p99 (ms)": round(latencies[int(len(latencies) * 0.99) - 1], 1) if latencies else None,
        "worker CPU (% core)": round(worker_cpu),
    }


async def main(args: argparse.Namespace) -> None:
    for guarantee, interval in (("at_least_once", args.commit_interval), ("exactly_once", args.commit_interval),
                                ("exactly_once", 0.1)):
        print(await measure(guarantee, interval, args.channels, args.members, args.rate, args.seconds), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--commit-interval", type=float, default=2.8, help="Faust's default, in seconds")
    asyncio.run(main(parser.parse_args()))

"""Replay throughput: how fast the log folds back into the presence tables.

    python -m bench.history [--users 1600] [--out bench/reference/history.json]

On a fresh Apache Kafka of its own: the recorded log of the history tests (bench/recorded_log.py, about
68 events per user) produced to `presence.events`, then
- `presence replay` end to end (Kafka fetch, decode, fold of users and leases, channels rebuilt at the
  end), with one process and with two;
- the single-process replay that derives every change (what a re-projection runs);
- the same records in this process: decoding alone; folding alone, with changes and without.
The issue's target is 200,000 events/s. Run it alone: it measures one core.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import platform
import pstats
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import recorded_log
from schemas.codec import decode
from schemas.events import EventBatch
from schemas.topics import EVENTS
from services import log_reader
from services.broker import create_topics, throwaway_broker
from services.replay_command import replay, replay_in_parallel, whole_log
from streams.replay import Tables

PARTITIONS = 8


async def produce(bootstrap: str, users: int) -> int:
    await create_topics(bootstrap, PARTITIONS)
    events = recorded_log.sessions(users, 40, start_ms=int(time.time() * 1000) - 600_000, span_ms=600_000)
    await recorded_log.produce(bootstrap, events, PARTITIONS)
    return len(events)


async def in_process(bootstrap: str, events: int) -> dict[str, Any]:
    records = [(r.partition, r.offset, r.value) async for batch in log_reader.read(bootstrap, EVENTS.name)
               for r in batch]
    began = time.perf_counter()
    batches = [(p, o, decode(v, EventBatch)) for p, o, v in records]
    decode_s = time.perf_counter() - began
    rates: dict[str, Any] = {"records": len(records), "decode_events_per_s": events / decode_s}
    for name, announce in (("fold", True), ("fold_users_only", False)):
        began = time.perf_counter()
        tables = Tables(announce=announce)
        for p, o, b in batches:
            tables.fold(p, o, b)
        if not announce:
            tables.rebuild_channels()
        rates[f"{name}_events_per_s"] = events / (time.perf_counter() - began)
    profiler = cProfile.Profile()
    profiler.enable()
    tables = Tables(announce=False)
    for p, o, b in batches:
        tables.fold(p, o, b)
    profiler.disable()
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(8)
    rates["profile_users_only"] = [line for line in top.getvalue().splitlines() if line.strip()][-10:]
    return rates


def measure(bootstrap: str, users: int) -> dict[str, Any]:
    events = asyncio.run(produce(bootstrap, users))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {"commit": commit, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                               "users": users, "events": events, "target_events_per_s": 200_000}
    for jobs in (1, 2):
        _, spans = asyncio.run(whole_log(bootstrap))
        _, summary = replay_in_parallel(bootstrap, Tables(announce=False), spans, jobs)
        results[f"presence_replay_jobs_{jobs}_events_per_s"] = summary["events_per_s"]
    began = time.perf_counter()
    _, summary = asyncio.run(replay(bootstrap))
    results["presence_replay_with_changes_events_per_s"] = summary["events"] / (time.perf_counter() - began)
    results.update(asyncio.run(in_process(bootstrap, events)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1600)
    parser.add_argument("--out", type=Path, default=Path("bench/reference/history.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="presence-bench-history-") as data, \
            throwaway_broker("kafka", Path(data)) as broker:
        results = measure(broker.bootstrap, args.users)
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    for key, value in results.items():
        if isinstance(value, int | float):
            print(f"{key:44} {value:,.0f}")
    print("\n".join(results["profile_users_only"]))


if __name__ == "__main__":
    main()

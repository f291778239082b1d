"""Replay throughput: how fast the log folds back into the presence tables.

    python -m bench.history [--users 1600] [--out bench/reference/history.json]

On a fresh Apache Kafka of its own: the recorded log of the history tests (bench/recorded_log.py, about
68 events per user) produced to `presence.events`, then
- `presence replay`'s read (services/replay_command.replay): Kafka fetch, decode and fold, end to end;
- the same records in this process: decode alone, fold alone (`streams.replay.Tables`), both.
The issue's target is 200,000 events/s. Run it alone: it measures one core.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
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
from services.replay_command import replay
from streams.replay import Tables

PARTITIONS = 8


async def measure(bootstrap: str, users: int) -> dict[str, Any]:
    await create_topics(bootstrap, PARTITIONS)
    events = recorded_log.sessions(users, 40, start_ms=int(time.time() * 1000) - 600_000, span_ms=600_000)
    await recorded_log.produce(bootstrap, events, PARTITIONS)
    began = time.perf_counter()
    _, summary = await replay(bootstrap)
    end_to_end = time.perf_counter() - began
    records = [(r.partition, r.offset, r.value) async for batch in log_reader.read(bootstrap, EVENTS.name)
               for r in batch]
    began = time.perf_counter()
    batches = [(p, o, decode(v, EventBatch)) for p, o, v in records]
    decode_s = time.perf_counter() - began
    began = time.perf_counter()
    tables = Tables()
    for p, o, b in batches:
        tables.fold(p, o, b)
    fold_s = time.perf_counter() - began
    profiler = cProfile.Profile()
    profiler.enable()
    for p, o, b in batches:
        Tables().fold(p, o, b)
    profiler.disable()
    top = io.StringIO()
    pstats.Stats(profiler, stream=top).sort_stats("tottime").print_stats(8)
    n = len(events)
    return {
        "users": users, "events": n, "records": len(records),
        "presence_replay_events_per_s": summary["events"] / end_to_end,
        "decode_events_per_s": n / decode_s,
        "fold_events_per_s": n / fold_s,
        "decode_and_fold_events_per_s": n / (decode_s + fold_s),
        "target_events_per_s": 200_000,
        "profile_top": [line for line in top.getvalue().splitlines() if line.strip()][-10:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1600)
    parser.add_argument("--out", type=Path, default=Path("bench/reference/history.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="presence-bench-history-") as data, \
            throwaway_broker("kafka", Path(data)) as broker:
        results = asyncio.run(measure(broker.bootstrap, args.users))
    args.out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    for key in ("events", "presence_replay_events_per_s", "decode_events_per_s", "fold_events_per_s",
                "decode_and_fold_events_per_s"):
        print(f"{key:32} {results[key]:,.0f}")
    print("\n".join(results["profile_top"]))


if __name__ == "__main__":
    main()

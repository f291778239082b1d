"""`python -m bench.processor_throughput`: presence events folded per second by one processor process,
the Faust worker (`python -m streams`) against the same folds on plain aiokafka (`bench.plain_processor`).

For each processor in turn: a fresh Apache Kafka, the topics, then a log written before the processor
starts: `--users` users connect and join channels of 20, then update their status `--updates` times
each, in records of `--batch` events (a busy edge's batches). The processor then drains it. Measured
from its first output record to its last, by polling the end offsets of `presence.users` (one view per
event here) every 0.2 s: events/s, and the processor's CPU over that window. Also the same log
through the pure cores in this process (`bench.replay`), the bound without Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.replay import replay
from bench.stack import ROOT, spawn_python, stop_process
from schemas.codec import encode
from schemas.events import ChannelJoined, ConnectionOpened, Event, EventBatch, PresenceUpdated
from schemas.topics import EVENTS, USERS, partition_for
from services.broker import create_topics, free_port, start_broker

PROCESSORS = {"faust": ("-m", "streams"), "aiokafka": ("-m", "bench.plain_processor")}
QUIET_S = 5.0  # no new output for this long: the processor has drained the log
LIMIT_S = 300.0  # longest wait for one processor


def workload(users: int, updates: int, partitions: int, batch: int) -> list[tuple[int, bytes]]:
    """(partition, EventBatch record) in the order an edge would write them."""
    at = int(time.time() * 1000)
    events: list[Event] = []
    for i in range(users):
        user, connection = f"u{i}", f"c{i}"
        common: dict[str, Any] = {"user_id": user, "connection_id": connection, "edge_id": "bench", "at": at}
        events.append(ConnectionOpened(event_id=f"o{i}", timeout_ms=3_600_000, **common))
        events.append(ChannelJoined(event_id=f"j{i}", channel=f"ch{i // 20}", **common))
    for round_ in range(updates):
        for i in range(users):
            events.append(PresenceUpdated(event_id=f"p{round_}-{i}", user_id=f"u{i}", connection_id=f"c{i}",
                                          edge_id="bench", at=at + 1 + round_,
                                          status="away" if round_ % 2 == 0 else "online", status_text=f"b{round_}"))
    pending: dict[int, list[Event]] = defaultdict(list)
    records = []
    for event in events:
        partition = partition_for(event.user_id, partitions)
        pending[partition].append(event)
        if len(pending[partition]) == batch:
            records.append((partition, encode(EventBatch(events=tuple(pending.pop(partition))))))
    records += [(p, encode(EventBatch(events=tuple(e)))) for p, e in pending.items()]
    return records


async def write_log(bootstrap: str, records: list[tuple[int, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for partition, value in records:
            await producer.send(EVENTS.name, value, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


async def drain(bootstrap: str, partitions: int, process: psutil.Process) -> dict[str, Any]:
    """Polls the output until it stops growing; returns the window from its first record to its last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    tps = [TopicPartition(USERS.name, p) for p in range(partitions)]
    samples: list[tuple[float, int, float]] = []  # (monotonic s, output records, process cpu s)
    deadline = time.monotonic() + LIMIT_S
    try:
        while time.monotonic() < deadline:
            ends = await consumer.end_offsets(tps)
            cpu = process.cpu_times()
            samples.append((time.monotonic(), sum(ends.values()), cpu.user + cpu.system))
            last_growth = max((t for (t, n, _), (_, m, _) in zip(samples[1:], samples, strict=False) if n > m),
                              default=None)
            if last_growth is not None and time.monotonic() - last_growth > QUIET_S:
                break
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
    total = samples[-1][1]
    first = next(s for s in samples if s[1] > 0)
    last = next(s for s in samples if s[1] == total)
    wall = last[0] - first[0]
    return {"output_records": total, "window_s": wall, "cpu_s": last[2] - first[2],
            "cpu_pct": 100 * (last[2] - first[2]) / wall if wall else None}


async def measure(name: str, records: list[tuple[int, bytes]], events: int, partitions: int,
                  logs: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as data:
        broker = start_broker("kafka", Path(data), free_port(), free_port())
        try:
            await create_topics(broker.bootstrap, partitions)
            await write_log(broker.bootstrap, records)
            env = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "PRESENCE_PARTITIONS": str(partitions),
                   "PRESENCE_DEV_MODE": "true", "PRESENCE_LOG_LEVEL": "warning",
                   "PRESENCE_WORKER_DATADIR": f"{data}/worker", "PYTHONPATH": str(ROOT)}
            process = spawn_python(logs, name, *PROCESSORS[name], env=env)
            try:
                result = await drain(broker.bootstrap, partitions, psutil.Process(process.pid))
            finally:
                stop_process(process)
        finally:
            broker.stop()
    result["events_per_s"] = events / result["window_s"] if result["window_s"] else None
    return result


async def main(args: argparse.Namespace) -> dict[str, Any]:
    records = workload(args.users, args.updates, args.partitions, args.batch)
    events = args.users * (2 + args.updates)
    print(f"log: {events:,} events in {len(records):,} records of up to {args.batch}", flush=True)
    results: dict[str, Any] = {"users": args.users, "updates": args.updates, "batch": args.batch,
                               "partitions": args.partitions, "events": events,
                               "pure_cores": replay([value for _, value in records])}
    print(f"pure cores in this process: {results['pure_cores']['decode_core_channels_events_per_s']:,.0f} events/s "
          "(decoding, stage 1 and stage 2)", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="processor-throughput-"))
    for name in args.processors:
        result = await measure(name, records, events, args.partitions, logs)
        results[name] = result
        print(f"{name}: {result['events_per_s']:,.0f} events/s over {result['window_s']:.1f} s, "
              f"CPU {result['cpu_pct']:.0f}% of a core, {result['output_records']:,} user views (logs: {logs})",
              flush=True)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.processor_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--updates", type=int, default=10, help="status updates per user")
    parser.add_argument("--batch", type=int, default=20, help="events per presence.events record")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--processors", nargs="*", default=list(PROCESSORS), choices=list(PROCESSORS))
    parser.add_argument("--out", default="", help="write the figures as JSON here")
    arguments = parser.parse_args()
    figures = asyncio.run(main(arguments))
    if arguments.out:
        Path(arguments.out).write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))

"""Kafka-side measurements: the two-hop (and three-hop) floor, and a census of every topic after the run."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.load import Phase, perf
from bench.stack import spawn_python, stop_process
from schemas.topics import TopicSpec
from services.broker import create_topics, topic_partitions

FETCH_WAIT_MS = 500  # as the service: Kafka answers a waiting fetch as soon as data arrives


async def kafka_floor(phase: Phase, bootstrap: str, partitions: int, hops: int, rate: float, duration_s: float,
                      logs: Path, monitor,  # type: ignore[no-untyped-def]
                      drain_s: float = 10.0) -> None:
    """produce -> consume -> produce [-> consume -> produce] -> consume, open loop at `rate`.

    The relay process consumes topic i and produces each record to topic i + 1 (aiokafka, fetch
    wait 500 ms, acks=all, linger 0, as the worker). Latency is
    measured in this process from the first send to the last receipt.
    """
    run = f"{int(time.time())}"
    topics = [f"bench.floor{hops}.{run}.{i}" for i in range(hops)]
    await create_topics(bootstrap, partitions, [TopicSpec(t, "seq", "bytes", "delete", "floor") for t in topics])
    relay = spawn_python(logs, f"floor-relay-{hops}hop", "-m", "bench.floors", "relay", bootstrap, *topics)
    monitor.add(f"floor relay ({hops}-hop)", relay.pid)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=FETCH_WAIT_MS, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    sent: dict[int, float] = {}
    warm: set[int] = set()
    task = None
    try:
        consumer.assign(await topic_partitions(consumer, topics[-1]))
        await _wait_for_line(logs / f"floor-relay-{hops}hop.log", "relay ready", 30, relay)

        async def consume() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=100, max_records=1000)
                now = perf()
                for records in batches.values():
                    for record in records:
                        seq = int(record.key)
                        t = sent.pop(seq, None)
                        if t is None:
                            continue
                        if seq in warm:
                            warm.discard(seq)
                            continue
                        phase.received += 1
                        phase.lat.append(now - t)
                        phase.at.append(t - phase.t0)

        task = asyncio.create_task(consume())
        value = orjson.dumps({"type": "presence.updated", "pad": "x" * 330})  # about the size of one event
        seq = 0
        # warm-up: one second at the rate, not counted (metadata, first fetches)
        for _ in range(int(max(20, rate))):
            warm.add(seq)
            sent[seq] = perf()
            await producer.send(topics[0], value, key=str(seq).encode(), partition=seq % partitions)
            seq += 1
            await asyncio.sleep(1 / max(20, rate))
        deadline = perf() + drain_s
        while warm and perf() < deadline:  # noqa: ASYNC110  (a bounded poll)
            await asyncio.sleep(0.05)
        window = monitor.window()
        phase.t0 = perf()
        phase.t0_epoch_ms = int(time.time() * 1000)
        phase.frames_start = phase.frames_end = 0
        phase.offered_rate = rate
        total = int(rate * duration_s)
        k = 0
        hard_stop = phase.t0 + duration_s * 3 + 10
        while k < total and perf() < hard_stop:
            due = min(total, int((perf() - phase.t0) * rate) + 1)
            while k < due:
                sent[seq] = perf()
                await producer.send(topics[0], value, key=str(seq).encode(), partition=seq % partitions)
                seq += 1
                k += 1
                phase.sent += 1
            await asyncio.sleep(0.001)
        phase.send_end = perf()
        phase.expected = phase.sent
        deadline = perf() + drain_s
        while phase.received < phase.expected and perf() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        phase.missing = phase.expected - phase.received
        phase.t_end = perf()
        phase.t_end_epoch_ms = int(time.time() * 1000)
        phase.usage = {k: v.__dict__ | {"cpu_pct": v.cpu_pct} for k, v in window.close().items()}
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await producer.stop()
        await consumer.stop()
        stop_process(relay)
        monitor.remove(f"floor relay ({hops}-hop)")


async def _wait_for_line(path: Path, text: str, timeout_s: float, process) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):  # noqa: ASYNC240  (a small log file)
            return
        if process.poll() is not None:
            raise RuntimeError(f"{path.name}: the process exited")
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{path.name}: no {text!r} within {timeout_s} s")


async def census(bootstrap: str, windows: dict[str, tuple[int, int]], timeout_s: float = 120.0,
                 keep_events: list[bytes] | None = None) -> dict:
    """Read every topic of the stack from the start; count records (and events) per phase window.

    Records are put in a window by their timestamp (set by the producer when it sent them), so this
    runs after the load and costs the measured phases nothing.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=100, auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    counts: dict[str, Counter] = defaultdict(Counter)  # window -> "topic" / "events" / "heartbeat events"
    totals: Counter = Counter()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("bench.") and not t.startswith("__"))
        tps = [tp for t in topics for tp in await topic_partitions(consumer, t)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ordered = sorted(windows.items(), key=lambda kv: kv[1][0])
        done: set[TopicPartition] = set()
        deadline = time.monotonic() + timeout_s
        idle_rounds = 0
        while len(done) < len(tps) and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=20000)
            idle_rounds = 0 if batches else idle_rounds + 1
            for tp, records in batches.items():
                for r in records:
                    totals[tp.topic] += 1
                    if keep_events is not None and tp.topic == "presence.events" and r.value:
                        keep_events.append(r.value)
                    ts = r.timestamp
                    for name, (start, end) in ordered:
                        if start <= ts <= end:
                            c = counts[name]
                            c[tp.topic] += 1
                            if tp.topic == "presence.events":
                                value = r.value or b""
                                c["events"] += value.count(b'"event_id"')
                                c["heartbeat events"] += value.count(b'"type":"heartbeat"')
                            break
            for tp in tps:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
            if idle_rounds >= 6:  # nothing more arrives; empty partitions never report a highwater
                break
    finally:
        await consumer.stop()
    return {"per_window": {k: dict(v) for k, v in counts.items()}, "totals": dict(totals)}

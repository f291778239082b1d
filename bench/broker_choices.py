"""The measurements behind the broker work-arounds: `python -m bench.broker_choices [--broker kafka|tansu]`.

On a broker of its own (fresh log), for each question the service's settings answer:
1. end offsets: does ListOffsets(LATEST) report the end of a partition whose batches hold several
   records? (Faust's table recovery and "caught up" checks read it.)
2. fetch wait: one hop, produce -> consume, at a steady rate, per `fetch_max_wait_ms`: latency, and
   the CPU the broker and the consumer spend while the partition is idle.
3. idempotent producer: produce throughput with and without it (Tansu refuses it).
Bounded: every loop has a count and a deadline; load goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import TopicSpec
from services.broker import create_topics, throwaway_broker

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def topic(name: str) -> TopicSpec:
    return TopicSpec(name=name, key="none", value="bytes", cleanup_policy="delete", description="bench only")


async def end_offsets(bootstrap: str) -> dict[str, int]:
    await create_topics(bootstrap, 1, [topic("bench.ends")])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        acks = [await producer.send("bench.ends", b"x" * 100, partition=0) for _ in range(1000)]
        last = max([(await ack).offset for ack in acks])
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition("bench.ends", 0)
        listed = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return {"records written (in batches of several)": 1000, "true end (last offset + 1)": last + 1,
            "end offset listed (ListOffsets LATEST)": listed}


async def one_hop(bootstrap: str, pid: int, fetch_wait_ms: int, rate: int, seconds: float) -> dict[str, float]:
    name = f"bench.hop-{fetch_wait_ms}"
    await create_topics(bootstrap, 1, [topic(name)])
    tp = TopicPartition(name, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        await consumer.position(tp)
        # Idle: nothing is written; what do the broker and this process spend on waiting fetches?
        idle_s = 5.0
        broker_before, own_before = cpu_seconds(pid), time.process_time()
        deadline = time.monotonic() + idle_s
        while time.monotonic() < deadline:
            await consumer.getmany(tp, timeout_ms=100)
        broker_idle = (cpu_seconds(pid) - broker_before) / idle_s * 100
        own_idle = (time.process_time() - own_before) / idle_s * 100

        async def produce() -> None:
            for _ in range(int(rate * seconds)):
                await producer.send(name, str(time.perf_counter()).encode(), partition=0)
                await asyncio.sleep(1 / rate)

        sending = asyncio.create_task(produce())
        deadline = time.monotonic() + seconds + 5
        while (not sending.done() or len(latencies) < int(rate * seconds)) and time.monotonic() < deadline:
            for records in (await consumer.getmany(tp, timeout_ms=100)).values():
                now = time.perf_counter()
                latencies += [(now - float(r.value)) * 1000 for r in records if r.value]
        await sending
    finally:
        await producer.stop()
        await consumer.stop()
    latencies.sort()
    return {"fetch wait (ms)": fetch_wait_ms, "records": len(latencies),
            "p50 (ms)": round(statistics.median(latencies), 1),
            "p99 (ms)": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "idle: broker CPU (% core)": round(broker_idle, 1), "idle: consumer CPU (% core)": round(own_idle, 1)}


async def produce_rate(bootstrap: str, idempotent: bool, count: int) -> dict[str, float]:
    name = f"bench.produce-{int(idempotent)}"
    await create_topics(bootstrap, 1, [topic(name)])
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=idempotent, linger_ms=1)
    await producer.start()
    try:
        began = time.perf_counter()
        acks = [await producer.send(name, b"x" * 200, partition=0) for _ in range(count)]
        await asyncio.gather(*acks)
        elapsed = time.perf_counter() - began
    finally:
        await producer.stop()
    return {"idempotent": idempotent, "records": count, "records/s": round(count / elapsed)}


async def main(kind: str, rate: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-broker-") as data, throwaway_broker(kind, Path(data)) as broker:
        print(f"broker: {kind} on {broker.bootstrap}")
        print("1. end offsets:", await end_offsets(broker.bootstrap))
        print(f"2. one hop at {rate}/s for {seconds:.0f} s:")
        for wait in (5, 500, 1500):
            print("  ", await one_hop(broker.bootstrap, broker.process.pid, wait, rate, seconds))
        print("3. produce 50,000 records of 200 bytes, acks=all:")
        for idempotent in (False, True) if broker.idempotent_producer else (False,):
            print("  ", await produce_rate(broker.bootstrap, idempotent, 50_000))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", choices=("kafka", "tansu"), default="kafka")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.broker, args.rate, args.seconds))

"""What a tailing consumer costs the embedded broker as its partition fills: `python -m bench.broker_polls`.

One broker of its own (Tansu, memory storage), one topic of one partition, one aiokafka consumer
tailing it from its end, as the worker's and the edge's consumers do. The partition is filled step
by step with one record per batch (what the edge and the worker write at these rates); after each
step, over a few seconds, the broker's CPU is measured and how many records the consumer has still
to read. Each fetch wait is a run of its own, on a fresh broker, the 5 ms the service uses by
default beside the others.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import TopicSpec
from services.broker import create_topics, free_port, start_embedded_broker

TOPIC = TopicSpec(name="bench.polls", key="none", value="300 bytes", cleanup_policy="delete",
                  description="filled by this benchmark only")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def tail(bootstrap: str, fetch_wait_ms: int, stop: asyncio.Event, read: list[int]) -> None:
    """Reads the partition until `stop`, counting the records in `read[0]`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=fetch_wait_ms)
    await consumer.start()
    partition = TopicPartition(TOPIC.name, 0)
    consumer.assign([partition])
    try:
        while not stop.is_set():
            read[0] += sum(len(records) for records in (await consumer.getmany(timeout_ms=100)).values())
    finally:
        await consumer.stop()


async def one_run(fetch_wait_ms: int, depths: list[int], measure_s: float) -> list[tuple[float, int]]:
    """Per depth: the broker's CPU (% of a core) and the records the consumer has not read."""
    port = free_port()
    broker = start_embedded_broker(port)
    bootstrap = f"127.0.0.1:{port}"
    try:
        await create_topics(bootstrap, 1, [TOPIC])
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        await producer.start()
        stop = asyncio.Event()
        read = [0]
        tailing = asyncio.create_task(tail(bootstrap, fetch_wait_ms, stop, read))
        await asyncio.sleep(1)  # assigned and positioned at the (empty) end
        written, figures = 0, []
        try:
            for depth in depths:
                while written < depth:  # one record per batch: each send waits for its ack
                    await producer.send_and_wait(TOPIC.name, b"x" * 300, partition=0)
                    written += 1
                before = cpu_seconds(broker.pid)
                await asyncio.sleep(measure_s)
                figures.append((100 * (cpu_seconds(broker.pid) - before) / measure_s, written - read[0]))
        finally:
            stop.set()
            await tailing
            await producer.stop()
        return figures
    finally:
        broker.kill()
        broker.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", default="5,50", help="fetch waits to compare, ms")
    parser.add_argument("--depths", default="0,4000,8000,10000,12000,16000",
                        help="one-record batches in the partition at each measurement")
    parser.add_argument("--measure-s", type=float, default=4.0)
    args = parser.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    if depths != sorted(depths) or depths[-1] > 50_000:
        parser.error("depths must grow and stay at most 50,000")
    print("fetch wait (ms) | " + " | ".join(f"{d:,} batches" for d in depths))
    for wait in (int(w) for w in args.waits.split(",")):
        figures = await one_run(wait, depths, args.measure_s)
        print(f"{wait} | " + " | ".join(f"{cpu:.0f}% CPU, {behind:,} unread" for cpu, behind in figures), flush=True)


if __name__ == "__main__":
    asyncio.run(main())

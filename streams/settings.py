"""Processor settings, read once from `PRESENCE_*` environment variables (docs/configuration.md)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from schemas.topics import DEFAULT_PARTITIONS


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    bootstrap_servers: str
    partitions: int
    worker_id: str
    sweep_interval_s: float
    channel_retention_s: float
    user_retention_s: float
    fetch_wait_ms: int
    session_timeout_s: float
    datadir: str
    dev_mode: bool
    table_store: str
    replication_factor: int

    def unsafe(self) -> list[str]:
        """What would lose state or acknowledged updates on a real cluster; empty in dev mode."""
        if self.dev_mode:
            return []
        problems = []
        if self.replication_factor < 3:
            problems.append(f"replication factor {self.replication_factor} for topics and changelogs (want >= 3)")
        if self.table_store.startswith("memory"):
            problems.append("in-memory table store (set PRESENCE_TABLE_STORE=rocksdb://)")
        return problems

    @classmethod
    def from_env(cls) -> WorkerSettings:
        env = os.environ
        worker_id = env.get("PRESENCE_WORKER_ID", f"worker-{socket.gethostname()}-{os.getpid()}")
        return cls(
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            partitions=int(env.get("PRESENCE_PARTITIONS", DEFAULT_PARTITIONS)),
            worker_id=worker_id,
            sweep_interval_s=float(env.get("PRESENCE_SWEEP_INTERVAL_S", "0.5")),
            channel_retention_s=float(env.get("PRESENCE_CHANNEL_RETENTION_S", "300")),
            user_retention_s=float(env.get("PRESENCE_USER_RETENTION_S", str(30 * 24 * 3600))),
            fetch_wait_ms=int(env.get("PRESENCE_FETCH_WAIT_MS", "5")),
            session_timeout_s=float(env.get("PRESENCE_SESSION_TIMEOUT_S", "10")),
            datadir=env.get("PRESENCE_WORKER_DATADIR", f"/tmp/presence-{worker_id}"),
            dev_mode=env.get("PRESENCE_DEV_MODE", "false").lower() in ("1", "true", "yes"),
            table_store=env.get("PRESENCE_TABLE_STORE", "memory://"),
            replication_factor=int(env.get("PRESENCE_REPLICATION_FACTOR", "1")),
        )

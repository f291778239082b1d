"""Processor settings, read once from `PRESENCE_*` environment variables (docs/configuration.md).

Read with Starlette's `Config`, as the edge's are, so both parse booleans and numbers alike.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.config import Config

from schemas.topics import DEFAULT_PARTITIONS


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    bootstrap_servers: str
    partitions: int
    worker_id: str
    sweep_interval_s: float
    snapshot_interval_s: float
    channel_retention_s: float
    user_retention_s: float
    fetch_wait_ms: int
    session_timeout_s: float
    datadir: str
    dev_mode: bool
    table_store: str
    replication_factor: int
    idempotent_producer: bool
    processing_guarantee: str
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no metrics served (streams/metrics.py)
    log_format: str = "text"  # or "json" (streams/logs.py)

    def unsafe(self) -> list[str]:
        """What would lose state or acknowledged updates on a real cluster; empty in dev mode."""
        if self.dev_mode:
            return []
        problems = []
        if self.replication_factor < 3:
            problems.append(f"replication factor {self.replication_factor} for topics and changelogs (want >= 3)")
        if self.table_store.startswith("memory"):
            problems.append("in-memory table store (set PRESENCE_TABLE_STORE=rocksdb://)")
        if not self.idempotent_producer:
            problems.append("producer without idempotence (PRESENCE_IDEMPOTENT_PRODUCER=false)")
        return problems

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        config = Config(environ=environ if environ is not None else os.environ)
        worker_id = config("PRESENCE_WORKER_ID", default=f"worker-{socket.gethostname()}-{os.getpid()}")
        return cls(
            bootstrap_servers=config("KAFKA_BOOTSTRAP_SERVERS", default="127.0.0.1:9092"),
            partitions=config("PRESENCE_PARTITIONS", cast=int, default=DEFAULT_PARTITIONS),
            worker_id=worker_id,
            sweep_interval_s=config("PRESENCE_SWEEP_INTERVAL_S", cast=float, default=0.5),
            snapshot_interval_s=config("PRESENCE_SNAPSHOT_INTERVAL_S", cast=float, default=600.0),
            channel_retention_s=config("PRESENCE_CHANNEL_RETENTION_S", cast=float, default=300.0),
            user_retention_s=config("PRESENCE_USER_RETENTION_S", cast=float, default=30 * 24 * 3600.0),
            fetch_wait_ms=config("PRESENCE_FETCH_WAIT_MS", cast=int, default=500),
            session_timeout_s=config("PRESENCE_SESSION_TIMEOUT_S", cast=float, default=10.0),
            datadir=config("PRESENCE_WORKER_DATADIR", default=f"/tmp/presence-{worker_id}"),
            dev_mode=config("PRESENCE_DEV_MODE", cast=bool, default=False),
            table_store=config("PRESENCE_TABLE_STORE", default="memory://"),
            replication_factor=config("PRESENCE_REPLICATION_FACTOR", cast=int, default=1),
            idempotent_producer=config("PRESENCE_IDEMPOTENT_PRODUCER", cast=bool, default=True),
            processing_guarantee=config("PRESENCE_PROCESSING_GUARANTEE", default="at_least_once"),
            metrics_host=config("PRESENCE_WORKER_METRICS_HOST", default="127.0.0.1"),
            metrics_port=config("PRESENCE_WORKER_METRICS_PORT", cast=int, default=0),
            log_format=_log_format(config("PRESENCE_LOG_FORMAT", default="text")),
        )


def _log_format(setting: str) -> str:
    if setting not in ("text", "json"):
        raise SystemExit(f"PRESENCE_LOG_FORMAT must be text or json, not {setting!r}")
    return setting

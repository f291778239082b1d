"""Starting with settings that lose state on a real cluster fails fast, unless in dev mode."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.settings import EdgeSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_worker_refuses_a_single_replica_memory_store_outside_dev_mode() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PRESENCE_DEV_MODE": "false",
           "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    refused = subprocess.run([sys.executable, "-m", "streams"], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "replication factor 1" in refused.stderr and "in-memory table store" in refused.stderr


def test_the_edge_lists_what_is_unsafe_outside_dev_mode() -> None:
    unsafe = EdgeSettings(jwt_secret="short", idempotent_producer=False).unsafe()
    assert len(unsafe) == 3
    assert EdgeSettings(jwt_secret="short", idempotent_producer=False, dev_mode=True).unsafe() == []
    safe = EdgeSettings(jwt_secret="x" * 32, idempotent_producer=True, open_channels=False)
    assert safe.unsafe() == []

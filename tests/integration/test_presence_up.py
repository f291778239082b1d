"""`presence up`, as `make run` runs it: Apache Kafka of its own, "ready" only once presence flows,
state kept across restarts, everything listening on 127.0.0.1 only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest

from services.auth import mint_token
from services.broker import free_port
from tests.integration.client import Client, heartbeating
from tests.integration.stack import ROOT, SECRET, Stack, eventually
from tests.integration.test_read_permissions import token
from tests.integration.test_worker_ports import listening

READY_WITHIN_S = 180


@contextlib.asynccontextmanager
async def presence_up(state_dir: Path, log: Path, ports: dict[str, int]) -> AsyncIterator[subprocess.Popen[str]]:
    """Runs `presence up` until its "ready" line, then yields it; Ctrl-C on the way out."""
    env = {key: value for key, value in os.environ.items() if key != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"PRESENCE_BROKER_PORT": str(ports["broker"]), "PRESENCE_CONTROLLER_PORT": str(ports["controller"]),
            "PRESENCE_HTTP_PORT": str(ports["http"]), "PRESENCE_STATE_DIR": str(state_dir),
            "PRESENCE_JWT_SECRET": SECRET, "PRESENCE_PARTITIONS": "2", "PYTHONPATH": str(ROOT)}
    presence = Path(sys.executable).with_name("presence")  # the console script `make run` calls
    command = [str(presence)] if presence.exists() else [sys.executable, "-m", "services.cli"]
    up = subprocess.Popen([*command, "up"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=ROOT)
    try:
        await asyncio.wait_for(asyncio.to_thread(_read_until_ready, up, log), READY_WITHIN_S)
        yield up
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            for child in psutil.Process(up.pid).children(recursive=True):
                child.kill()
            up.kill()
            up.wait()


def _read_until_ready(up: subprocess.Popen[str], log: Path) -> None:
    assert up.stdout is not None
    with open(log, "a") as out:
        for line in up.stdout:
            out.write(line)
            if line.startswith("ready in "):
                return
    pytest.fail(f"presence up exited before its ready line; see {log}")


def _printed(up: subprocess.Popen[str], last: str = "dev token") -> dict[str, str]:
    """The lines `presence up` prints after its ready line, by their first word(s), up to `last`."""
    assert up.stdout is not None
    printed = {}
    for line in up.stdout:
        name, _, value = line.partition("  ")
        printed[name.strip()] = value.strip()
        if name.startswith(last):
            break
    return printed


async def test_ready_means_presence_flows_and_a_restart_keeps_the_state(stack: Stack, tmp_path: Path) -> None:
    ports = {"broker": free_port(), "controller": free_port(), "http": free_port()}
    base_url, ws_url = f"http://127.0.0.1:{ports['http']}", f"ws://127.0.0.1:{ports['http']}/realtime/ws"
    log = stack.logs / "presence-up.log"
    # Bob is read once he shares no channel with alice any more: her token names him in `read_users`.
    alice_reads = {"Authorization": f"Bearer {token('alice', read_users=['bob'])}"}
    stack.logs.mkdir(parents=True, exist_ok=True)
    async with presence_up(tmp_path, log, ports) as up:
        printed = await asyncio.to_thread(_printed, up)
        # The dashboard's line names its page and a service key that reads every channel.
        page, _, key = printed["dashboard"].partition("  (service key ")
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(page)).status_code == 200
            listed = await http.get(f"{base_url}/realtime/channels",
                                    headers={"Authorization": f"Bearer {key.rstrip(')')}"})
            assert listed.status_code == 200, listed.text
        # At once after "ready": a second user's join reaches the first within 1 s.
        alice, bob = Client(ws_url, mint_token(SECRET, "alice")), Client(ws_url, mint_token(SECRET, "bob"))
        await alice.connect()
        await bob.connect()
        async with heartbeating(alice, bob):
            await alice.join("lobby")
            joined_at = time.monotonic()
            await bob.join("lobby")
            await alice.next(lambda f: f["type"] == "presence.diff" and
                             any(m["user_id"] == "bob" for m in f["joins"]), timeout_s=1.0)
            assert time.monotonic() - joined_at < 1.0
            async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
                answer = await http.post("/realtime/presence/update?wait=true", json={"metadata": {"team": "red"}},
                                         headers={"Authorization": f"Bearer {mint_token(SECRET, 'bob')}"})
                assert answer.status_code == 200, answer.text
        await bob.close()
        await alice.close()
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            async def bob_offline() -> dict[str, object] | None:
                view = (await http.get("/realtime/users/bob/presence", headers=alice_reads)).json()
                return view if view["status"] == "offline" else None
            bob_before = await eventually(bob_offline, timeout_s=10)
        # Everything `make run` starts listens on 127.0.0.1 only, and the worker on nothing.
        tree = psutil.Process(up.pid).children(recursive=True)
        workers = [p for p in tree if p.cmdline()[1:3] == ["-m", "streams"]]
        assert len(workers) == 1, [p.cmdline() for p in tree]
        assert listening(workers[0].pid) == []
        assert sorted(set(listening(up.pid))) == sorted(f"127.0.0.1:{port}" for port in ports.values()), ports

    # Ctrl-C, then `make run` again on the same state: what was written before is still there.
    async with presence_up(tmp_path, log, ports), httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        answer = await http.get("/realtime/users/bob/presence", headers=alice_reads)
        assert answer.status_code == 200, answer.text
        bob_after = answer.json()
        assert bob_after["metadata"] == {"team": "red"}
        assert bob_after["status"] == "offline"
        assert bob_after["last_seen"] == bob_before["last_seen"] is not None

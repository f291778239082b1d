"""Promise 7, bounded resources, under connect/disconnect churn for SOAK_MINUTES (`make soak`).

A fixed pool of users (twice the connected population) churns through a fixed set of channels:
SOAK_CHURN_PER_S times a second a connection ends (half cleanly, 30% by vanishing, 20% half-open
until the timeout has passed, then reset) and a user not connected opens a connection, joins a
channel, and may start typing and update its status. A few typists stay connected throughout and
start typing now and then. The resident memory (RSS) of the edge and the worker is sampled.

Memory criterion, stated: the first 30% of the run is warm-up (every user of the pool and every
channel has been seen by then). Memory is flat when the median RSS of the last 20% of the run is
at most max(10%, 16 MiB) above the median RSS of the window from 30% to 50% of the run, for the
edge and for the worker. The least-squares slope after warm-up is reported as well.

At the end (everyone but the typists gone, then the typists too): typing indicators have expired
while their users are still members, every user gone is offline on `presence.users` and in no
channel, and the published views equal the reference fold of the log.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import pytest

from bench.wsclient import HandshakeError
from tests.chaos.conftest import env_number, own_stack
from tests.chaos.load import Hub, Peer
from tests.chaos.stack import ChaosStack
from tests.chaos.verdict import Log
from tests.integration.stack import GRACE_S, TIMEOUT_S

GROWTH_ALLOWED = 0.10
GROWTH_FLOOR_MB = 16.0


@dataclass(frozen=True)
class SoakPlan:
    minutes: float
    population: int
    churn_per_s: float
    channels: int
    typists: int = 3
    seed: int = 7

    @classmethod
    def from_env(cls) -> SoakPlan:
        return cls(minutes=env_number("SOAK_MINUTES", 5), population=int(env_number("SOAK_CONNECTIONS", 200)),
                   churn_per_s=env_number("SOAK_CHURN_PER_S", 10), channels=int(env_number("SOAK_CHANNELS", 20)))


@pytest.fixture
async def soak_stack() -> AsyncIterator[ChaosStack]:
    async with own_stack(workers=1) as stack:
        yield stack


def flatness(samples: list[tuple[float, float]], duration_s: float) -> dict[str, Any]:
    """Medians of the windows of the criterion, the growth, the slope after warm-up, and the verdict."""
    def window(lo: float, hi: float) -> list[float]:
        return [mb for t, mb in samples if lo * duration_s <= t <= hi * duration_s]

    baseline, final = statistics.median(window(0.3, 0.5)), statistics.median(window(0.8, 1.0))
    after = [(t, mb) for t, mb in samples if t >= 0.3 * duration_s]
    slope = statistics.linear_regression([t for t, _ in after], [mb for _, mb in after]).slope * 60
    allowed = max(GROWTH_ALLOWED * baseline, GROWTH_FLOOR_MB)
    return {"first (MiB)": round(samples[0][1], 1), "baseline 30-50% (MiB)": round(baseline, 1),
            "final 80-100% (MiB)": round(final, 1), "max (MiB)": round(max(mb for _, mb in samples), 1),
            "growth (MiB)": round(final - baseline, 1), "allowed (MiB)": round(allowed, 1),
            "slope after warm-up (MiB/min)": round(slope, 2), "flat": final - baseline <= allowed}


async def channel_reads(stack: ChaosStack, channels: list[str]) -> dict[str, dict[str, Any]]:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
        answers = await asyncio.gather(*(http.get(f"/realtime/channels/{c}/presence", params={"count_only": "true"},
                                                  headers={"Authorization": f"Bearer {stack.token('soak-reader')}"})
                                         for c in channels))
    return {c: a.json() for c, a in zip(channels, answers, strict=True)}


async def run_soak(stack: ChaosStack, plan: SoakPlan) -> dict[str, Any]:
    hub = Hub(stack, plan.seed)
    log = Log(stack.bootstrap)
    rng = hub.rng
    run = f"{stack.run_id}-{int(time.time()) % 100000}"
    channels = [f"soak-{run}-{i}" for i in range(plan.channels)]
    pool = [f"soak-{run}-u{i}" for i in range(2 * plan.population)]
    duration_s = plan.minutes * 60
    samples: dict[str, list[tuple[float, float]]] = {}
    churned: Counter[str] = Counter()
    tasks: set[asyncio.Task[Any]] = set()
    t0 = time.monotonic()

    async def sample_forever() -> None:
        while True:
            for name, mb in stack.rss_mb().items():
                samples.setdefault(name, []).append((time.monotonic() - t0, mb))
            await asyncio.sleep(2)

    async def arrive(user_id: str) -> Peer | None:
        try:
            peer = await hub.connect(user_id, channel=rng.choice(channels), keeper=False)
        except (OSError, TimeoutError, HandshakeError) as exc:
            churned[f"connect failed: {exc}"] += 1
            return None
        if rng.random() < 0.3:
            peer.send({"type": "typing.start", "channel": peer.channel})
        if rng.random() < 0.2:
            hub.send_ws_update(peer, rng.randrange(10**6))
        return peer

    async def half_open_then_reset(peer: Peer) -> None:
        peer.go_half_open()
        await asyncio.sleep(TIMEOUT_S + 1)
        peer.abort()

    def spawn(coro: Any) -> None:
        task = asyncio.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    sampler = asyncio.create_task(sample_forever())
    try:
        typists = [await hub.connect(f"soak-{run}-typist{i}", channel=channels[i]) for i in range(plan.typists)]
        live = [p for p in await asyncio.gather(*(arrive(u) for u in pool[:plan.population])) if p is not None]
        free = set(pool[plan.population:])
        k = 0
        while time.monotonic() - t0 < duration_s:
            await asyncio.sleep(rng.expovariate(plan.churn_per_s))
            k += 1
            if k % 50 == 0:
                hub.peers = [p for p in hub.peers if p.conn is not None and p.conn.state != "closed"]
                for typist in typists:
                    if rng.random() < 0.5:
                        typist.send({"type": "typing.start", "channel": typist.channel})
            if live and len(tasks) < 200:
                old = live.pop(rng.randrange(len(live)))
                roll = rng.random()
                if roll < 0.5:
                    spawn(old.close())
                    churned["clean close"] += 1
                elif roll < 0.8:
                    old.abort()
                    churned["vanished"] += 1
                else:
                    spawn(half_open_then_reset(old))
                    churned["half-open"] += 1
                free.add(old.user_id)
            if free and len(live) < plan.population:
                user_id = rng.choice(sorted(free))
                free.discard(user_id)

                async def come(user_id: str = user_id) -> None:
                    peer = await arrive(user_id)
                    if peer is not None:
                        live.append(peer)
                        churned["connected"] += 1
                    else:
                        free.add(user_id)

                spawn(come())
        churn_s = time.monotonic() - t0
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        for peer in live:
            await peer.close()
        await asyncio.sleep(max(TIMEOUT_S, GRACE_S) + 4)  # vanished users time out, typing expires
        reads = await channel_reads(stack, channels)
        typists_only = {c: r for c, r in reads.items()
                        if r["typing"] or r["occupancy"] != sum(1 for t in typists if t.channel == c)}
        for typist in typists:
            await typist.close()
        verdict, settle_s = await log.settled_verdict(hub.acked, timeout_s=60, quiet_s=1)
        reads = await channel_reads(stack, channels)
        not_empty = {c: r for c, r in reads.items() if r["occupancy"] or r["typing"]}
        views = await log.views.read()
        latest = {p.user_id: p.view for partition in sorted(views) for p in views[partition]}
        online_after = sorted(u for u, v in latest.items() if v is not None and v.online)
        sampler.cancel()
        memory = {name: flatness(points, churn_s) for name, points in samples.items() if len(points) > 10}
        return {
            "plan": asdict(plan),
            "churn (s)": round(churn_s, 1),
            "duration (s)": round(time.monotonic() - t0, 1),
            "churn steps": dict(churned),
            "rss samples": {name: len(points) for name, points in samples.items()},
            "memory": memory,
            "channels with typing or strangers while only the typists remained": typists_only,
            "channels not empty after everyone left": not_empty,
            "users in the log": verdict.users,
            "users still online": online_after,
            "lost acknowledged": len(verdict.lost),
            "divergent users": len(verdict.divergent),
            "settled after (s)": round(settle_s, 1),
            "errors": dict(hub.errors),
        }
    finally:
        sampler.cancel()
        await hub.close()
        await log.close()


@pytest.mark.soak
@pytest.mark.timeout(3600)
async def test_churn_soak_memory_flat_typing_expires_users_go_offline(soak_stack: ChaosStack, record) -> None:
    figures = await run_soak(soak_stack, SoakPlan.from_env())
    record(soak_stack, figures)
    assert figures["memory"], figures
    assert all(m["flat"] for m in figures["memory"].values()), figures["memory"]
    assert figures["channels with typing or strangers while only the typists remained"] == {}, figures
    assert figures["channels not empty after everyone left"] == {}, figures
    assert figures["users still online"] == [], figures
    assert (figures["lost acknowledged"], figures["divergent users"]) == (0, 0), figures

"""Promise 2 while the processor lags: nobody is shown online more than timeout + 2 s + the
processor's lag after their last heartbeat reached the log, their timeouts come out as soon as the
processor catches up, nobody whose heartbeats are in the log is timed out (promise 4), and the
edge's `presence_processor_lag_seconds` shows the lag while it lasts: ghosts stay within the
timeout + 2 s + the metric's peak.

Every worker is stopped with SIGSTOP for `CHAOS_PAUSE_S` (3 x the timeout, longer than the
consumer group's session timeout, so the workers also rejoin their group when they go on). Victims
vanish or go half-open (`tests/chaos/ghosts.py`) before the pause, so that their deadline falls in
it, and during it; keepers, one in each partition of `presence.events`, heartbeat throughout. An
observer subscribed to their channel times each departure, and every keeper it sees leave counts as
a false timeout. Bystanders in another channel update all along (their statuses include
`invisible`, which others see as a departure), so the workers come back to a backlog.

Every partition has traffic, as in production. In a partition without any, a record Faust skips
when the workers rejoin stays unapplied until the partition's next record (the fold finds a hole
when a later record comes), and the sweeper, seeing the partition behind, writes no new timeout:
a victim alone in its partition was never shown leaving (docs/reliability.md, promise 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

from schemas.topics import partition_for
from tests.chaos.conftest import env_number
from tests.chaos.ghosts import departures_seen, figures_of, make_disappear
from tests.chaos.load import Hub, Peer
from tests.chaos.stack import ChaosStack
from tests.chaos.test_processor_kills import partition_probes
from tests.chaos.verdict import Log
from tests.integration.stack import GRACE_S, PROBE_INTERVAL_S, PROBE_TIMEOUT_S, TIMEOUT_S, eventually

PAUSE_S = env_number("CHAOS_PAUSE_S", 3 * TIMEOUT_S)
KINDS = ("vanished", "half-open")
# From SIGCONT until the timeouts due during the pause are seen: the workers rejoin their group,
# read the backlog and sweep (measured: see docs/reliability.md, promise 2).
CATCH_UP_SLACK_MS = 6000
LAG_METRIC = b"presence_processor_lag_seconds "
CAUGHT_UP_S = 1.0  # the lag metric below this: the processor applies heartbeats as they come
SAMPLING_MS = 500  # what the samples of the metric may miss of its peak: one sample and two updates


async def sample_lag(hub: Hub, samples: list[tuple[float, float]], ready: list[tuple[float, int]]) -> None:
    """The edge's lag metric and its /readyz status every 0.2 s, as (wall s, value), until cancelled."""
    while True:
        _, body = await hub.get("/metrics", "metrics-reader")
        value = next(float(line[len(LAG_METRIC):]) for line in body.splitlines() if line.startswith(LAG_METRIC))
        samples.append((time.time(), value))
        status, _ = await hub.get("/readyz", "metrics-reader")
        ready.append((time.time(), status))
        await asyncio.sleep(0.2)


def first_after(ready: list[tuple[float, int]], since: float, status: int) -> int | None:
    """Ms from `since` to the first sample at or after it with `status`."""
    return next((int((t - since) * 1000) for t, s in ready if t >= since and s == status), None)


def signal_workers(stack: ChaosStack, sig: signal.Signals) -> None:
    for worker in stack.live_workers():
        worker.send_signal(sig)


async def run_lag(stack: ChaosStack, pause_s: float, figures: dict[str, Any]) -> None:
    figures.update({"pause (s)": pause_s, "timeout (s)": TIMEOUT_S, "grace (s)": GRACE_S,
                    "catch-up slack (ms)": CATCH_UP_SLACK_MS})
    hub = Hub(stack, seed=13)
    log = Log(stack.bootstrap)
    run = f"{stack.run_id}-{int(time.time()) % 100000}"
    channel = f"lag-{run}"
    samples: list[tuple[float, float]] = []
    ready: list[tuple[float, int]] = []
    sampler: asyncio.Task[None] | None = None
    stopped_at = resumed_at = 0.0
    try:
        observer = await hub.connect(f"observer-{run}", observer=True)
        await hub.subscribe(observer, channel)
        keepers = [await hub.connect(u, channel=channel) for u in partition_probes(f"keep-{run}", stack.partitions)]
        doomed = {phase: [(kind, await hub.connect(f"{phase}-{kind}-{run}", channel=channel, keeper=False))
                          for kind in KINDS] for phase in ("before", "during")}
        bystanders = [await hub.connect(f"bystander-{run}-{i}", channel=f"{channel}-busy") for i in range(4)]
        load = asyncio.create_task(hub.drive(20, 3600, lambda: bystanders, post_share=0.2, typing_share=0.05))
        sampler = asyncio.create_task(sample_lag(hub, samples, ready))
        await asyncio.sleep(2)  # a few heartbeats of each reach the log
        for kind, peer in doomed["before"]:
            make_disappear(kind, peer)
        await asyncio.sleep(1)  # their deadlines (grace 2 s, timeout 3 s) fall in the pause
        stopped_at = time.time()
        signal_workers(stack, signal.SIGSTOP)
        try:
            await asyncio.sleep(1)
            for kind, peer in doomed["during"]:
                make_disappear(kind, peer)
            await asyncio.sleep(pause_s - 1)
        finally:
            signal_workers(stack, signal.SIGCONT)
            resumed_at = time.time()
        victims = doomed["before"] + doomed["during"]
        await departures_seen(observer, [p for _, p in victims], timeout_s=TIMEOUT_S + 30)
        with contextlib.suppress(TimeoutError):  # reported below, not waited for
            await eventually(lambda: samples[-1][0] > resumed_at and samples[-1][1] < CAUGHT_UP_S, timeout_s=30)
        await asyncio.sleep(TIMEOUT_S)  # a keeper timed out late would show by now
        load.cancel()
        sampler.cancel()
        verdict = await log.verdict(hub.acked)
        paused_ms = int((resumed_at - stopped_at) * 1000)
        before = [v for t, v in samples if t < stopped_at]
        during = [v for t, v in samples if stopped_at <= t <= resumed_at]
        caught_up = next((t for t, v in samples if t > resumed_at and v < CAUGHT_UP_S), None)
        keeper_ids = {p.connection_id for p in keepers}
        peak_lag_ms = int(max(v for _, v in samples) * 1000)
        figures.update({
            "processor stopped (ms)": paused_ms,
            "bound (ms): timeout + 2 s + stopped + slack": int(TIMEOUT_S * 1000) + 2000 + paused_ms + CATCH_UP_SLACK_MS,
            **figures_of(observer, victims, verdict),
            "departure seen, ms after SIGCONT": {f"{phase} {kind}": seen_after(observer, peer, resumed_at)
                                                 for phase, pairs in doomed.items() for kind, peer in pairs},
            "victims' partitions": {f"{phase} {kind}": partition_for(peer.user_id, stack.partitions)
                                    for phase, pairs in doomed.items() for kind, peer in pairs},
            "lag metric before the pause, max (s)": max(before, default=None),
            "lag metric at the end of the pause (s)": during[-1] if during else None,
            "lag metric, peak (ms)": peak_lag_ms,
            "bound by the metric (ms): timeout + 2 s + its peak": int(TIMEOUT_S * 1000) + 2000 + peak_lag_ms,
            "lag metric back under 1 s, ms after SIGCONT": caught_up and int((caught_up - resumed_at) * 1000),
            "readyz before the pause": sorted({s for t, s in ready if t < stopped_at}),
            "readyz 503, first seen ms after SIGSTOP": first_after(ready, stopped_at, 503),
            "readyz 200 again, ms after SIGCONT": first_after(ready, resumed_at, 200),
            "keeper connections": len(keepers),
            "keepers seen leaving by the observer": sorted(u for u in observer.left_seen if u.startswith("keep-")),
            "keeper timeouts in the log": len([t for t in verdict.log_timeouts if t.connection_id in keeper_ids]),
            "keepers closed by the edge": [p.user_id for p in keepers if not p.open],
            "updates acknowledged": len(hub.acked),
            "errors": dict(hub.errors),
        })
    finally:
        if sampler is not None:
            sampler.cancel()
        await hub.close()
        await log.close()


def seen_after(observer: Peer, peer: Peer, resumed_at: float) -> int | None:
    seen = observer.left_seen.get(peer.user_id)
    return None if seen is None else seen - int(resumed_at * 1000)


def check(figures: dict[str, Any]) -> None:
    assert figures["max ghost (ms)"] <= figures["bound (ms): timeout + 2 s + stopped + slack"], figures
    # What an operator sees is enough to know how long ghosts may last.
    by_metric = figures["bound by the metric (ms): timeout + 2 s + its peak"]
    assert figures["max ghost (ms)"] <= by_metric + SAMPLING_MS, figures
    # The timeouts due during the pause come out once the processor catches up, not a timeout later.
    after_sigcont = figures["departure seen, ms after SIGCONT"].values()
    assert all(after is not None and 0 <= after <= CATCH_UP_SLACK_MS for after in after_sigcont), figures
    assert figures["keepers seen leaving by the observer"] == [], figures
    assert figures["keeper timeouts in the log"] == 0, figures
    assert figures["keepers closed by the edge"] == [], figures
    # The operator's signal: low while the processor keeps up, the length of the pause at its end.
    assert figures["lag metric before the pause, max (s)"] < CAUGHT_UP_S, figures
    assert figures["lag metric at the end of the pause (s)"] >= figures["processor stopped (ms)"] / 1000 - 1.5, figures
    assert figures["lag metric back under 1 s, ms after SIGCONT"] is not None, figures
    # /readyz says so too: unready within a probe timeout (plus a probe interval and sampling) of the
    # stop, ready again once the processor answers.
    assert figures["readyz before the pause"] == [200], figures
    unready_after = figures["readyz 503, first seen ms after SIGSTOP"]
    bound_ms = (PROBE_TIMEOUT_S + PROBE_INTERVAL_S) * 1000 + SAMPLING_MS
    assert unready_after is not None and unready_after <= bound_ms, figures
    assert figures["readyz 200 again, ms after SIGCONT"] is not None, figures


async def test_ghost_bound_while_the_processor_is_stopped(chaos_stack: ChaosStack, record) -> None:
    figures: dict[str, Any] = {}
    try:
        await run_lag(chaos_stack, PAUSE_S, figures)
    finally:
        record(chaos_stack, figures)
    check(figures)

"""Fixtures of the fault suites: one chaos stack per package (its own broker, so the log
holds only what these tests wrote), and the figures each test measured, printed at the end of the
run and written as JSON next to the process logs."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tests.chaos.stack import ChaosStack
from tests.integration.client import wait_for_processor
from tests.integration.stack import Broker, kafka_broker

FIGURES: list[tuple[str, dict[str, Any]]] = []


def env_number(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@pytest.fixture(scope="package")
def chaos_broker() -> Iterator[Broker]:
    with kafka_broker() as found:
        yield found


async def started(broker: Broker, workers: int, **overrides: str) -> ChaosStack:
    stack = ChaosStack(bootstrap=broker.bootstrap, idempotent_producer=broker.idempotent_producer, overrides=overrides)
    try:
        await stack.start(workers)
        await wait_for_processor(stack.ws_url, stack.token(f"probe-{stack.run_id}"), f"probe-{stack.run_id}")
    except BaseException:
        stack.stop()
        raise
    return stack


@pytest.fixture(scope="package")
async def chaos_stack(chaos_broker: Broker) -> AsyncIterator[ChaosStack]:
    """Shared by the fast tests: one start-up for all of them."""
    stack = await started(chaos_broker, workers=int(env_number("CHAOS_WORKERS", 2)))
    try:
        yield stack
    finally:
        stack.stop()


@contextlib.asynccontextmanager
async def own_stack(workers: int, **overrides: str) -> AsyncIterator[ChaosStack]:
    """A stack on a broker of its own, so what an earlier test wrote does not deepen its partitions."""
    with kafka_broker() as broker:
        stack = await started(broker, workers, **overrides)
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture
async def fresh_chaos_stack() -> AsyncIterator[ChaosStack]:
    """For the long tests."""
    async with own_stack(int(env_number("CHAOS_WORKERS", 2))) as stack:
        yield stack


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[ChaosStack, dict[str, Any]], None]:
    def _record(stack: ChaosStack, figures: dict[str, Any]) -> None:
        figures = {"test": request.node.nodeid, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "logs": str(stack.logs), "load average (1, 5, 15 min)": os.getloadavg(),
                   "cores": os.cpu_count(), **figures}
        FIGURES.append((request.node.nodeid, figures))
        stack.logs.mkdir(parents=True, exist_ok=True)
        (stack.logs / f"{request.node.name}.json").write_text(json.dumps(figures, indent=2, default=str))

    return _record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability figures")
    for nodeid, figures in FIGURES:
        terminalreporter.write_line(nodeid)
        for key, value in figures.items():
            if key != "test":
                terminalreporter.write_line(f"    {key}: {value}")

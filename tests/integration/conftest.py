from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from bench import recorded_log
from bench.recorded_log import Recorded
from tests.integration.client import Client, wait_for_processor
from tests.integration.stack import PARTITIONS, Broker, Stack, kafka_broker

RECORDED_USERS, RECORDED_CHANNELS, RECORDED_SPAN_MS = 1600, 40, 600_000  # about 108,000 events


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    with kafka_broker() as found:
        yield found


@pytest.fixture(scope="session")
async def stack(broker: Broker) -> AsyncIterator[Stack]:
    stack = Stack(bootstrap=broker.bootstrap, idempotent_producer=broker.idempotent_producer)
    await stack.start()
    try:
        await wait_for_processor(stack.ws_url, stack.token("probe"), "probe")
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def channel() -> str:
    return f"room-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def connect(stack: Stack) -> AsyncIterator:  # type: ignore[type-arg]
    clients: list[Client] = []

    async def _connect(user_id: str, channels: list[str] | None = None, **params: str) -> Client:
        client = Client(stack.ws_url, stack.token(user_id, channels), **params)
        await client.connect()
        clients.append(client)
        return client

    yield _connect
    for client in clients:
        if client._ws.state.name == "OPEN":
            await client.close()


@pytest.fixture(scope="session")
async def recorded(stack: Stack) -> Recorded:
    """The recorded log of the history tests (over 100,000 events), produced once."""
    start = int(time.time() * 1000) - RECORDED_SPAN_MS - 60_000
    events = recorded_log.sessions(RECORDED_USERS, RECORDED_CHANNELS, start, RECORDED_SPAN_MS)
    await recorded_log.produce(stack.bootstrap, events, PARTITIONS)
    return Recorded(start, RECORDED_SPAN_MS, len(events))


# The history tests run last, so the log they replay holds what every other test produced, and the
# recorded log's backlog slows no other test.
LAST = {"test_history.py": 1, "test_replay.py": 2}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: LAST.get(item.path.name, 0))

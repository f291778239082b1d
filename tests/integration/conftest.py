from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.integration.client import Client, wait_for_processor
from tests.integration.stack import Broker, Stack, kafka_broker


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The replay check runs last, so the log it replays holds what every other test produced."""
    items.sort(key=lambda item: item.path.name == "test_replay.py")

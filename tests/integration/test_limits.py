"""Limits and origin checks at the edge: abuse is answered with a code, then cut off."""

from __future__ import annotations

import contextlib

import pytest
import websockets

from tests.integration.frames import user
from tests.integration.stack import ALLOWED_ORIGIN, MAX_CHANNELS, MAX_CONNECTIONS, Stack


async def test_websocket_from_a_foreign_origin_is_refused(stack: Stack) -> None:
    url = f"{stack.ws_url}?token={stack.token(user('origin'))}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    async with websockets.connect(url, origin=ALLOWED_ORIGIN) as allowed:
        assert "welcome" in await allowed.recv()


async def test_connections_per_user_are_limited(stack: Stack, connect) -> None:
    user_id = user("many")
    for _ in range(MAX_CONNECTIONS):
        await connect(user_id)
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(f"{stack.ws_url}?token={stack.token(user_id)}")
    assert refused.value.response.status_code == 429


async def test_channels_per_connection_are_limited(connect) -> None:
    client = await connect(user("collector"))
    for i in range(MAX_CHANNELS):
        await client.join(f"many-{i}-{user('c')}")
    before = len(client.frames)
    await client.send(type="join", channel=user("one-too-many"))
    assert (await client.error(after=before))["code"] == "limit.channels_per_connection"


async def test_a_flood_of_frames_is_dropped_then_the_socket_closed(connect) -> None:
    client = await connect(user("flood"))
    with contextlib.suppress(websockets.ConnectionClosed):
        for _ in range(200):
            await client.send(type="heartbeat")
    assert (await client.error(after=0))["code"] == "limit.rate"
    await client.next(lambda f: f["type"] == "error" and f["code"] == "limit.abuse")
    await client._ws.wait_closed()
    assert client._ws.close_code == 1008

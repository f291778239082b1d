"""An edge whose JWKS comes from a URL (services/keys.py): while the identity provider is slow to answer
the fetch an unknown `kid` starts, the edge goes on serving everyone else, and the token that waited
for the fetch verifies with the key it brought."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from services.broker import free_port
from tests.integration.frames import user
from tests.integration.stack import Stack, eventually, start_edge, stop_edge
from tests.unit.test_auth_keys import public_jwk


class SlowIdp:
    """A JWKS URL on this test's event loop: the first fetch (the edge's start) is answered at once, later
    ones once `release` is set."""

    def __init__(self, keys: list[dict[str, Any]]) -> None:
        self.keys = keys
        self.fetches = 0
        self.release = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.fetches += 1
        if self.fetches > 1:
            await self.release.wait()
        body = json.dumps({"keys": self.keys}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()


def signed(key: rsa.RSAPrivateKey, kid: str, sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, key, algorithm="RS256", headers={"kid": kid})


async def test_a_slow_jwks_fetch_holds_only_the_requests_that_wait_for_it(stack: Stack) -> None:
    old_key, new_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    idp = SlowIdp([public_jwk(old_key, "old")])
    server = await asyncio.start_server(idp.serve, "127.0.0.1", 0)
    idp_port = server.sockets[0].getsockname()[1]
    name, port = f"edge-jwks-url-{uuid.uuid4().hex[:6]}", free_port()
    edge = await start_edge(stack, name, port, name, PRESENCE_JWKS_URL=f"http://127.0.0.1:{idp_port}/jwks.json")
    try:
        ada = user("ada")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async def read_as(token: str) -> httpx.Response:
                return await http.get("/realtime/channels", headers={"Authorization": f"Bearer {token}"})

            assert (await read_as(signed(old_key, "old", ada))).status_code == 200  # read at start: no fetch
            assert idp.fetches == 1
            idp.keys = [public_jwk(old_key, "old"), public_jwk(new_key, "new")]
            rotated = signed(new_key, "new", ada)

            async def fetch_started() -> asyncio.Task[httpx.Response] | None:
                """A request with the unknown kid, once it starts a fetch: within 5 s of the last read
                (the start), the edge refuses it at once without one (the rate limit)."""
                request = asyncio.create_task(read_as(rotated))
                await eventually(lambda: request.done() or idp.fetches == 2, interval_s=0.01)
                if idp.fetches == 2:
                    return request
                assert (await request).status_code == 401 and idp.fetches == 1
                return None

            waiting = await eventually(fetch_started, timeout_s=20, interval_s=0.2)
            # The fetch hangs; the edge answers other tokens meanwhile (it would time out after 2 s).
            known, hs256 = await read_as(signed(old_key, "old", ada)), await read_as(stack.token(ada))
            assert not waiting.done()
            idp.release.set()
            answer = await waiting
        assert (known.status_code, hs256.status_code, answer.status_code) == (200, 200, 200), answer.text
        assert idp.fetches == 2
    finally:
        stop_edge(edge)
        server.close()
        await server.wait_closed()

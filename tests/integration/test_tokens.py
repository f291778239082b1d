"""End-user tokens against the real stack: RS256/ES256 tokens verified with a JWKS file on an edge of their
own, with a key rotated in while it runs; and the lifetime of a socket's token (docs/api.md#token-refresh):
a socket re-authenticated in time outlives its first token, one that is not is warned, then closed 4401."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.broker import free_port
from tests.integration.client import Client, heartbeating
from tests.integration.frames import user
from tests.integration.stack import Stack, eventually, start_edge, stop_edge
from tests.unit.test_auth_keys import hs256_by_hand, public_jwk


def signed(key: Any, alg: str, kid: str, sub: str) -> str:
    now = int(time.time())
    return jwt.encode({"sub": sub, "iat": now, "exp": now + 600}, key, algorithm=alg, headers={"kid": kid})


async def test_rs256_and_es256_tokens_verify_with_a_jwks_file_and_a_rotated_key(stack: Stack,
                                                                                 tmp_path: Path) -> None:
    rsa_key, ec_key, next_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048),
                                 ec.generate_private_key(ec.SECP256R1()),
                                 rsa.generate_private_key(public_exponent=65537, key_size=2048))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1")]}))
    name, port = f"edge-jwks-{uuid.uuid4().hex[:6]}", free_port()
    edge = await start_edge(stack, name, port, name, PRESENCE_JWKS_FILE=str(jwks))
    try:
        ada, bob = user("ada"), user("bob")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for token, sub in [(signed(rsa_key, "RS256", "rsa-1", ada), ada),
                               (signed(ec_key, "ES256", "ec-1", bob), bob)]:
                answer = await http.post("/realtime/presence/update", json={"status": "busy"},
                                         headers={"Authorization": f"Bearer {token}"})
                assert (answer.status_code, answer.json()["user_id"]) == (200, sub), answer.text
            socket = Client(f"ws://127.0.0.1:{port}/realtime/ws", signed(ec_key, "ES256", "ec-1", bob))
            welcome = await socket.connect()
            assert welcome["user_id"] == bob and welcome["token_expires_at"] > time.time() * 1000
            await socket.close()
            # HS256 with the stack's secret still verifies on the same edge.
            hs = await http.post("/realtime/presence/update", json={"status": "away"},
                                 headers={"Authorization": f"Bearer {stack.token(ada)}"})
            assert hs.status_code == 200, hs.text

            # Rotation: a key published while the edge runs verifies once the edge reads the set again
            # (at once for an unknown kid, at most every few seconds); the old keys keep verifying.
            rotated = signed(next_key, "RS256", "rsa-2", ada)
            first = await http.get(f"/realtime/users/{ada}/presence", headers={"Authorization": f"Bearer {rotated}"})
            assert (first.status_code, first.json()["error"]["code"]) == (401, "auth.invalid_token")
            jwks.write_text(json.dumps({"keys": [public_jwk(rsa_key, "rsa-1"), public_jwk(next_key, "rsa-2")]}))

            async def accepted() -> bool:
                answer = await http.get(f"/realtime/users/{ada}/presence",
                                        headers={"Authorization": f"Bearer {rotated}"})
                return answer.status_code == 200

            await eventually(accepted, timeout_s=20, interval_s=0.5)
            old = await http.get(f"/realtime/users/{ada}/presence",
                                 headers={"Authorization": f"Bearer {signed(rsa_key, 'RS256', 'rsa-1', ada)}"})
            assert old.status_code == 200, old.text
            # An HS256 token signed with the RSA public key as the secret is refused (algorithm confusion).
            confused = hs256_by_hand(json.dumps(public_jwk(rsa_key, "rsa-1")).encode(),
                                     {"sub": ada, "exp": int(time.time()) + 60}, {"kid": "rsa-1"})
            refused = await http.get(f"/realtime/users/{ada}/presence",
                                     headers={"Authorization": f"Bearer {confused}"})
            assert (refused.status_code, refused.json()["error"]["code"]) == (401, "auth.invalid_token")
    finally:
        stop_edge(edge)


async def test_a_socket_lives_as_long_as_its_token_unless_it_re_authenticates(stack: Stack, channel: str) -> None:
    ada = user("ada")
    short = stack.token(ada, ttl_s=5)
    first_expiry = jwt.decode(short, options={"verify_signature": False})["exp"] * 1000
    refreshed, expiring, mismatched = (Client(stack.ws_url, short), Client(stack.ws_url, short),
                                       Client(stack.ws_url, short))
    for socket in (refreshed, expiring, mismatched):
        welcome = await socket.connect()
        assert welcome["token_expires_at"] == first_expiry
    async with heartbeating(refreshed, expiring, mismatched):
        # Another user's token, or a service key, does not take over the socket; it stays open.
        for ref, token in [("other", stack.token(user("eve"))), ("service", stack.service_key())]:
            start = len(mismatched.frames)
            await mismatched.send(type="auth", token=token, ref=ref)
            assert (await mismatched.error(after=start))["code"] == "auth.user_mismatch"

        notice = await refreshed.next(lambda f: f["type"] == "auth.expiring", timeout_s=10)
        assert notice["token_expires_at"] == first_expiry
        await refreshed.send(type="auth", token=stack.token(ada, ttl_s=600), ref="r1")
        ack = await refreshed.next(lambda f: f["type"] == "ack" and f.get("ref") == "r1")
        assert ack["token_expires_at"] > first_expiry + 500_000

        await expiring.next(lambda f: f["type"] == "auth.expiring", timeout_s=10)
        error = await expiring.next(lambda f: f["type"] == "error", timeout_s=10)
        assert (error["code"], error["retriable"]) == ("auth.token_expired", False)

        async def closed() -> bool:
            return expiring._ws.close_code is not None and mismatched._ws.close_code is not None

        await eventually(closed, timeout_s=10)
        assert expiring._ws.close_code == mismatched._ws.close_code == 4401
        assert time.time() * 1000 >= first_expiry

        # The refreshed socket outlived its first token: it still works.
        await refreshed.send(type="subscribe", channel=channel, ref="s1")
        await refreshed.next(lambda f: f["type"] == "presence.snapshot" and f.get("ref") == "s1")
        assert refreshed._ws.close_code is None
    await refreshed.close()

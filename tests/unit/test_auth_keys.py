"""End-user tokens signed with RS256/ES256 keys of a JWKS, HS256 secrets in rotation, and the refusal of
tokens whose algorithm does not come from the key (services/keys.py, services/auth.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from services.auth import Authenticator, mint_token
from services.errors import ApiError
from services.keys import REFRESH_S, UNKNOWN_KID_REFRESH_S, Jwks

SECRET = "s" * 32
OTHER_SECRET = "o" * 32


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


def token(key: Any, alg: str, kid: str | None, sub: str = "ada", ttl_s: int = 60, **claims: Any) -> str:
    now = int(time.time())
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode({"sub": sub, "iat": now, "exp": now + ttl_s, **claims}, key, algorithm=alg, headers=headers)


def write_jwks(path: Path, *jwks: dict[str, Any]) -> None:
    path.write_text(json.dumps({"keys": list(jwks)}))


@pytest.fixture
def keys() -> dict[str, Any]:
    return {"rsa": rsa_key(), "ec": ec_key(), "rsa2": rsa_key()}


@pytest.fixture
def clock() -> Clock:
    return Clock()


def authenticator(jwks: Jwks | None, secret: str = SECRET) -> Authenticator:
    return Authenticator(secret, jwks=jwks)


async def refused(auth: Authenticator, credential: str) -> str:
    with pytest.raises(ApiError) as info:
        await auth.authenticate(credential)
    assert info.value.error.code == "auth.invalid_token"
    return info.value.message


async def test_rs256_and_es256_tokens_verify_with_the_key_their_kid_names(tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"), public_jwk(keys["ec"], "e1"))
    auth = authenticator(await Jwks.load(file=str(path)))

    rs = await auth.authenticate(token(keys["rsa"], "RS256", "r1", channels=["room-*"]))
    es = await auth.authenticate(token(keys["ec"], "ES256", "e1", sub="bob"))

    assert (rs.user_id, rs.channels, es.user_id) == ("ada", ("room-*",), "bob")
    assert rs.expires_at is not None and rs.expires_at % 1000 == 0
    # HS256 still verifies next to the JWKS.
    assert (await auth.authenticate(mint_token(SECRET, "cy"))).user_id == "cy"


async def test_a_token_signed_by_another_key_or_naming_the_wrong_kid_is_refused(
        tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"), public_jwk(keys["ec"], "e1"))
    auth = authenticator(await Jwks.load(file=str(path)))

    assert "Signature verification failed" in await refused(auth, token(keys["rsa2"], "RS256", "r1"))
    assert "is for ES256, not RS256" in await refused(auth, token(keys["rsa"], "RS256", "e1"))
    assert "needs a `kid`" in await refused(auth, token(keys["rsa"], "RS256", None))
    assert "no key with kid 'nope'" in await refused(auth, token(keys["rsa"], "RS256", "nope"))
    assert "expired" in await refused(auth, token(keys["ec"], "ES256", "e1", ttl_s=-60))


def hs256_by_hand(secret: bytes, claims: dict[str, Any], headers: dict[str, Any]) -> str:
    """An HS256 JWT made without PyJWT, which refuses a PEM key as an HMAC secret on the way out too."""
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode()) + b"." + b64(
        json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


async def test_an_hs256_token_signed_with_the_public_key_is_refused(tmp_path: Path, keys: dict[str, Any]) -> None:
    """Algorithm confusion: a verifier that took the alg from the token would check HMAC with the public key."""
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"))
    auth = authenticator(await Jwks.load(file=str(path)))
    pem = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"sub": "mallory", "exp": int(time.time()) + 60}

    assert "Signature verification failed" in await refused(auth, hs256_by_hand(pem, claims, {"kid": "r1"}))
    assert "Signature verification failed" in await refused(auth, hs256_by_hand(json.dumps(public_jwk(
        keys["rsa"], "r1")).encode(), claims, {"kid": "r1"}))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "r1"})
    assert "'none' are not accepted" in await refused(auth, unsigned)


async def test_rotation_both_kids_verify_and_a_removed_kid_is_refused_after_the_refresh(
        tmp_path: Path, keys: dict[str, Any], clock: Clock) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "old"))
    auth = authenticator(await Jwks.load(file=str(path), clock=clock))
    old = token(keys["rsa"], "RS256", "old")

    write_jwks(path, public_jwk(keys["rsa"], "old"), public_jwk(keys["rsa2"], "new"))  # the new key is published
    new = token(keys["rsa2"], "RS256", "new")
    clock.now += UNKNOWN_KID_REFRESH_S  # an unknown kid reads the set again at once (rate-limited)
    assert (await auth.authenticate(new)).user_id == (await auth.authenticate(old)).user_id == "ada"

    write_jwks(path, public_jwk(keys["rsa2"], "new"))  # the old key is retired
    assert (await auth.authenticate(old)).user_id == "ada"  # until the next refresh
    clock.now += REFRESH_S
    assert "no key with kid 'old'" in await refused(auth, old)
    assert (await auth.authenticate(new)).user_id == "ada"


async def test_an_unknown_kid_reads_the_set_again_at_most_once_per_interval(keys: dict[str, Any], clock: Clock) -> None:
    served = {"keys": [public_jwk(keys["rsa"], "r1")]}
    fetches = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, json=served)

    jwks = await Jwks.load(url="https://idp.example/jwks.json", clock=clock, transport=httpx.MockTransport(handler))
    auth = authenticator(jwks)
    assert len(fetches) == 1  # at start
    for kid in ("x1", "x2", "x3"):  # made-up kids within the interval: no fetch
        await refused(auth, token(keys["rsa"], "RS256", kid))
    assert len(fetches) == 1

    served = {"keys": [public_jwk(keys["rsa"], "r1"), public_jwk(keys["rsa2"], "r2")]}
    clock.now += UNKNOWN_KID_REFRESH_S
    assert (await auth.authenticate(token(keys["rsa2"], "RS256", "r2"))).user_id == "ada"
    assert fetches == ["https://idp.example/jwks.json"] * 2


async def test_a_set_that_cannot_be_read_keeps_the_keys_read_last(keys: dict[str, Any], clock: Clock) -> None:
    answers: list[httpx.Response | httpx.HTTPError] = [
        httpx.Response(200, json={"keys": [public_jwk(keys["ec"], "e1")]}), httpx.Response(503),
        httpx.ReadTimeout("the identity provider is slow"), httpx.Response(200, text="{not json")]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, httpx.HTTPError):
            raise answer
        return answer

    jwks = await Jwks.load(url="https://idp.example/jwks.json", clock=clock, transport=httpx.MockTransport(handler))
    auth = authenticator(jwks)
    for _ in range(3):  # an error status, a timeout, a body that is not JSON
        clock.now += REFRESH_S
        assert (await auth.authenticate(token(keys["ec"], "ES256", "e1"))).user_id == "ada"
    assert answers == []


async def test_several_hs256_secrets_verify_and_the_first_signs(keys: dict[str, Any]) -> None:
    auth = authenticator(None, secret=f"{OTHER_SECRET}, {SECRET}")

    assert (await auth.authenticate(mint_token(SECRET, "ada"))).user_id == "ada"  # signed with the old secret
    assert (await auth.authenticate(mint_token(f"{OTHER_SECRET},{SECRET}", "bob"))).user_id == "bob"
    assert jwt.decode(mint_token(f"{OTHER_SECRET},{SECRET}", "bob"), OTHER_SECRET, algorithms=["HS256"])
    assert "Signature verification failed" in await refused(auth, mint_token("x" * 32, "eve"))
    # Without a JWKS, asymmetric tokens are not accepted at all.
    assert "'RS256' are not accepted" in await refused(auth, token(keys["rsa"], "RS256", "r1"))


async def test_a_jwks_without_usable_keys_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h1"}]}))
    with pytest.raises(ValueError, match="no RS256 or ES256 key"):
        await Jwks.load(file=str(path))


class SlowIdp:
    """A JWKS URL whose answers wait until `release` is set, counting the fetches."""

    def __init__(self, served: dict[str, Any]) -> None:
        self.served = served
        self.fetches = 0
        self.fetching = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()  # the first fetch, at start, answers at once

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        self.fetching.set()
        await self.release.wait()
        return httpx.Response(200, json=self.served)

    async def jwks(self, clock: Clock) -> Jwks:
        jwks = await Jwks.load(url="https://idp.example/jwks.json", clock=clock,
                               transport=httpx.MockTransport(self.handler))
        self.release.clear()
        self.fetching.clear()
        return jwks


async def test_concurrent_checks_of_one_unknown_kid_share_one_fetch(keys: dict[str, Any], clock: Clock) -> None:
    idp = SlowIdp({"keys": [public_jwk(keys["rsa"], "r1")]})
    auth = authenticator(await idp.jwks(clock))
    idp.served = {"keys": [public_jwk(keys["rsa"], "r1"), public_jwk(keys["rsa2"], "r2")]}
    clock.now += UNKNOWN_KID_REFRESH_S

    checks = [asyncio.create_task(auth.authenticate(token(keys["rsa2"], "RS256", "r2", sub=f"u{i}")))
              for i in range(5)]
    await idp.fetching.wait()
    idp.release.set()

    assert [p.user_id for p in await asyncio.gather(*checks)] == [f"u{i}" for i in range(5)]
    assert idp.fetches == 2  # the one at start, and one for the five checks


async def test_a_slow_fetch_does_not_hold_the_event_loop(keys: dict[str, Any], clock: Clock) -> None:
    idp = SlowIdp({"keys": [public_jwk(keys["rsa"], "r1")]})
    auth = authenticator(await idp.jwks(clock))
    clock.now += UNKNOWN_KID_REFRESH_S

    waiting = asyncio.create_task(auth.authenticate(token(keys["rsa2"], "RS256", "r2")))
    await idp.fetching.wait()  # the fetch hangs ...
    # ... while other checks on the loop go on: a known kid and an HS256 token need no fetch.
    assert (await asyncio.wait_for(auth.authenticate(token(keys["rsa"], "RS256", "r1")), 1)).user_id == "ada"
    assert (await asyncio.wait_for(auth.authenticate(mint_token(SECRET, "bob")), 1)).user_id == "bob"
    assert not waiting.done()

    idp.release.set()
    with pytest.raises(ApiError, match="no key with kid 'r2'"):
        await waiting
    assert idp.fetches == 2


async def test_the_set_is_read_again_in_the_background(keys: dict[str, Any], clock: Clock,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    idp = SlowIdp({"keys": [public_jwk(keys["rsa"], "r1")]})
    jwks = await idp.jwks(clock)
    idp.release.set()
    monkeypatch.setattr("services.keys.REFRESH_S", 0.01)
    idp.served = {"keys": [public_jwk(keys["rsa2"], "r2")]}

    async def served_r2() -> None:
        while True:
            with contextlib.suppress(ApiError):
                await jwks.key("r2")  # the clock stands still: this check never reads the set itself
                return
            await asyncio.sleep(0.01)

    refreshing = asyncio.create_task(jwks.refresh_forever())
    try:
        await asyncio.wait_for(served_r2(), 5)
    finally:
        refreshing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refreshing
    assert idp.fetches >= 2

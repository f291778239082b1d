"""Strict JWT validation and channel authorization: the negative cases an attacker would try."""

from __future__ import annotations

import base64
import time

import jwt
import orjson
import pytest

from services.auth import Authenticator, mint_token
from services.errors import ApiError

SECRET = "s" * 64
AUTH = Authenticator(SECRET, audience="presence", issuer="https://auth.example")


def token(**overrides: object) -> str:
    claims = {"sub": "alice", "exp": int(time.time()) + 60, "aud": "presence", "iss": "https://auth.example"}
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


async def refused(raw: str | None) -> str:
    with pytest.raises(ApiError) as failed:
        await AUTH.authenticate(raw)
    return failed.value.error.code


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_a_valid_token_names_the_user() -> None:
    assert (await AUTH.authenticate(token())).user_id == "alice"


async def test_missing_and_garbage_tokens() -> None:
    assert await refused(None) == "auth.missing_token"
    assert await refused("") == "auth.missing_token"
    assert await refused("not.a.jwt") == "auth.invalid_token"


async def test_alg_none_is_refused() -> None:
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    body = _b64(orjson.dumps({"sub": "mallory", "exp": int(time.time()) + 60, "aud": "presence",
                              "iss": "https://auth.example"}))
    assert await refused(f"{header}.{body}.") == "auth.invalid_token"


async def test_another_algorithm_with_the_secret_is_refused() -> None:
    # Algorithm confusion: the same secret under HS512 must not pass an HS256-only check.
    confused = jwt.encode({"sub": "mallory", "exp": int(time.time()) + 60, "aud": "presence",
                           "iss": "https://auth.example"}, SECRET, algorithm="HS512")
    assert await refused(confused) == "auth.invalid_token"


async def test_expired_not_yet_valid_and_tampered_tokens_are_refused() -> None:
    assert await refused(token(exp=int(time.time()) - 60)) == "auth.invalid_token"
    assert await refused(token(nbf=int(time.time()) + 60)) == "auth.invalid_token"
    header, body, signature = token().split(".")
    forged = _b64(orjson.dumps({"sub": "mallory", "exp": int(time.time()) + 60, "aud": "presence",
                                "iss": "https://auth.example"}))
    assert await refused(f"{header}.{forged}.{signature}") == "auth.invalid_token"


async def test_audience_issuer_and_required_claims() -> None:
    assert await refused(token(aud="another-service")) == "auth.invalid_token"
    assert await refused(token(aud=None)) == "auth.invalid_token"
    assert await refused(token(iss="https://evil.example")) == "auth.invalid_token"
    assert await refused(token(exp=None)) == "auth.invalid_token"
    assert await refused(token(sub=None)) == "auth.invalid_token"
    assert await refused(token(sub="")) == "auth.invalid_token"
    assert await refused(token(channels="lobby")) == "auth.invalid_token"


async def test_leeway_is_bounded_to_a_few_seconds() -> None:
    assert (await AUTH.authenticate(token(exp=int(time.time()) - 2))).user_id == "alice"
    assert await refused(token(exp=int(time.time()) - 30)) == "auth.invalid_token"


async def test_channel_claims_and_deny_by_default() -> None:
    limited = await AUTH.authenticate(token(channels=["team-*", "lobby"]))
    assert limited.may_access("team-blue") and limited.may_access("lobby")
    assert not limited.may_access("team") and not limited.may_access("secret")
    closed = await Authenticator(SECRET, open_channels=False).authenticate(mint_token(SECRET, "bob"))
    assert not closed.may_access("lobby")
    opened = await Authenticator(SECRET).authenticate(mint_token(SECRET, "bob"))
    assert opened.may_access("anything")

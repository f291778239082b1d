"""End-user tokens signed with RS256/ES256 keys of a JWKS, HS256 secrets in rotation, and the refusal of
tokens whose algorithm does not come from the key (services/keys.py, services/auth.py)."""

from __future__ import annotations

import base64
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


def refused(auth: Authenticator, credential: str) -> str:
    with pytest.raises(ApiError) as info:
        auth.authenticate(credential)
    assert info.value.error.code == "auth.invalid_token"
    return info.value.message


def test_rs256_and_es256_tokens_verify_with_the_key_their_kid_names(tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"), public_jwk(keys["ec"], "e1"))
    auth = authenticator(Jwks(file=str(path)))

    rs = auth.authenticate(token(keys["rsa"], "RS256", "r1", channels=["room-*"]))
    es = auth.authenticate(token(keys["ec"], "ES256", "e1", sub="bob"))

    assert (rs.user_id, rs.channels, es.user_id) == ("ada", ("room-*",), "bob")
    assert rs.expires_at is not None and rs.expires_at % 1000 == 0
    # HS256 still verifies next to the JWKS.
    assert auth.authenticate(mint_token(SECRET, "cy")).user_id == "cy"


def test_a_token_signed_by_another_key_or_naming_the_wrong_kid_is_refused(
        tmp_path: Path, keys: dict[str, Any]) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"), public_jwk(keys["ec"], "e1"))
    auth = authenticator(Jwks(file=str(path)))

    assert "Signature verification failed" in refused(auth, token(keys["rsa2"], "RS256", "r1"))
    assert "is for ES256, not RS256" in refused(auth, token(keys["rsa"], "RS256", "e1"))
    assert "needs a `kid`" in refused(auth, token(keys["rsa"], "RS256", None))
    assert "no key with kid 'nope'" in refused(auth, token(keys["rsa"], "RS256", "nope"))
    assert "expired" in refused(auth, token(keys["ec"], "ES256", "e1", ttl_s=-60))


def hs256_by_hand(secret: bytes, claims: dict[str, Any], headers: dict[str, Any]) -> str:
    """An HS256 JWT made without PyJWT, which refuses a PEM key as an HMAC secret on the way out too."""
    def b64(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode()) + b"." + b64(
        json.dumps(claims).encode())
    return (signing_input + b"." + b64(hmac.new(secret, signing_input, hashlib.sha256).digest())).decode()


def test_an_hs256_token_signed_with_the_public_key_is_refused(tmp_path: Path, keys: dict[str, Any]) -> None:
    """Algorithm confusion: a verifier that took the alg from the token would check HMAC with the public key."""
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "r1"))
    auth = authenticator(Jwks(file=str(path)))
    pem = keys["rsa"].public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    claims = {"sub": "mallory", "exp": int(time.time()) + 60}

    assert "Signature verification failed" in refused(auth, hs256_by_hand(pem, claims, {"kid": "r1"}))
    assert "Signature verification failed" in refused(auth, hs256_by_hand(json.dumps(public_jwk(
        keys["rsa"], "r1")).encode(), claims, {"kid": "r1"}))
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "r1"})
    assert "'none' are not accepted" in refused(auth, unsigned)


def test_rotation_both_kids_verify_and_a_removed_kid_is_refused_after_the_refresh(
        tmp_path: Path, keys: dict[str, Any], clock: Clock) -> None:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(keys["rsa"], "old"))
    auth = authenticator(Jwks(file=str(path), clock=clock))
    old = token(keys["rsa"], "RS256", "old")

    write_jwks(path, public_jwk(keys["rsa"], "old"), public_jwk(keys["rsa2"], "new"))  # the new key is published
    new = token(keys["rsa2"], "RS256", "new")
    clock.now += UNKNOWN_KID_REFRESH_S  # an unknown kid reads the set again at once (rate-limited)
    assert auth.authenticate(new).user_id == auth.authenticate(old).user_id == "ada"

    write_jwks(path, public_jwk(keys["rsa2"], "new"))  # the old key is retired
    assert auth.authenticate(old).user_id == "ada"  # until the next refresh
    clock.now += REFRESH_S
    assert "no key with kid 'old'" in refused(auth, old)
    assert auth.authenticate(new).user_id == "ada"


def test_an_unknown_kid_reads_the_set_again_at_most_once_per_interval(keys: dict[str, Any], clock: Clock) -> None:
    served = {"keys": [public_jwk(keys["rsa"], "r1")]}
    fetches = []

    def handler(request: httpx.Request) -> httpx.Response:
        fetches.append(str(request.url))
        return httpx.Response(200, json=served)

    jwks = Jwks(url="https://idp.example/jwks.json", clock=clock, transport=httpx.MockTransport(handler))
    auth = authenticator(jwks)
    assert len(fetches) == 1  # at start
    for kid in ("x1", "x2", "x3"):  # made-up kids within the interval: no fetch
        refused(auth, token(keys["rsa"], "RS256", kid))
    assert len(fetches) == 1

    served = {"keys": [public_jwk(keys["rsa"], "r1"), public_jwk(keys["rsa2"], "r2")]}
    clock.now += UNKNOWN_KID_REFRESH_S
    assert auth.authenticate(token(keys["rsa2"], "RS256", "r2")).user_id == "ada"
    assert fetches == ["https://idp.example/jwks.json"] * 2


def test_a_set_that_cannot_be_read_keeps_the_keys_read_last(keys: dict[str, Any], clock: Clock) -> None:
    answers = [httpx.Response(200, json={"keys": [public_jwk(keys["ec"], "e1")]}), httpx.Response(503)]
    jwks = Jwks(url="https://idp.example/jwks.json", clock=clock,
                transport=httpx.MockTransport(lambda request: answers.pop(0)))
    clock.now += REFRESH_S

    assert authenticator(jwks).authenticate(token(keys["ec"], "ES256", "e1")).user_id == "ada"
    assert answers == []


def test_several_hs256_secrets_verify_and_the_first_signs(keys: dict[str, Any]) -> None:
    auth = authenticator(None, secret=f"{OTHER_SECRET}, {SECRET}")

    assert auth.authenticate(mint_token(SECRET, "ada")).user_id == "ada"  # signed with the old secret
    assert auth.authenticate(mint_token(f"{OTHER_SECRET},{SECRET}", "bob")).user_id == "bob"
    assert jwt.decode(mint_token(f"{OTHER_SECRET},{SECRET}", "bob"), OTHER_SECRET, algorithms=["HS256"])
    assert "Signature verification failed" in refused(auth, mint_token("x" * 32, "eve"))
    # Without a JWKS, asymmetric tokens are not accepted at all.
    assert "'RS256' are not accepted" in refused(auth, token(keys["rsa"], "RS256", "r1"))


def test_a_jwks_without_usable_keys_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h1"}]}))
    with pytest.raises(ValueError, match="no RS256 or ES256 key"):
        Jwks(file=str(path))

"""The keys end-user tokens are verified with: HS256 secrets, and RS256/ES256 public keys from a JWKS.

`PRESENCE_JWT_SECRET` holds one HS256 secret or several, comma-separated: the first signs development
tokens (`presence token`), all verify, so a secret is rotated by adding the new one first, then
removing the old one once its tokens have expired.

`PRESENCE_JWKS_FILE` (a JSON file) or `PRESENCE_JWKS_URL` (fetched with httpx) holds public keys by
`kid`, several at once during a rotation. The edge reads the set before serving and again every
`REFRESH_S` in the background (`Jwks.refresh_forever`); a token check reads it when it is older than
`REFRESH_S`, and at once when the token names a `kid` the set does not hold, at most every
`UNKNOWN_KID_REFRESH_S` (a stream of tokens with made-up kids must not turn into a stream of fetches).
Fetches are asynchronous (up to `FETCH_TIMEOUT_S`): only the checks that need the new set wait for
it, and they share one fetch; the event loop goes on serving everyone else. A set that cannot be read
keeps the keys read last.

Rules:
1. The algorithm comes from the key, never from the token alone: HS256 verifies only with the secrets,
   RS256/ES256 only with the JWKS key the token's `kid` names, whose own algorithm must be the token's.
   So an HS256 token signed with a public key as its secret is refused (algorithm confusion).
2. An asymmetric token without a `kid`, or with one the set does not hold after a refresh, is refused.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
from jwt import PyJWK

from services.errors import ApiError

log = logging.getLogger(__name__)

ASYMMETRIC = frozenset({"RS256", "ES256"})
REFRESH_S = 60.0
UNKNOWN_KID_REFRESH_S = 5.0
FETCH_TIMEOUT_S = 2.0


def hs256_secrets(setting: str) -> tuple[str, ...]:
    """`PRESENCE_JWT_SECRET`: one secret, or several comma-separated (the first signs)."""
    return tuple(s.strip() for s in setting.split(",") if s.strip())


class Jwks:
    """Public keys by `kid`, read from a JWKS file or URL and kept fresh (see the module doc)."""

    def __init__(self, file: str = "", url: str = "", clock: Callable[[], float] = time.monotonic,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if bool(file) == bool(url):
            raise ValueError("a JWKS comes from a file or a URL, not both")
        self._file, self._url = file, url
        self._clock = clock
        self._transport = transport
        self._keys: dict[str, PyJWK] = {}
        self._read_at = float("-inf")
        self._reading = asyncio.Lock()  # one read at a time: concurrent checks of one unknown kid share it

    @classmethod
    async def load(cls, file: str = "", url: str = "", clock: Callable[[], float] = time.monotonic,
                   transport: httpx.AsyncBaseTransport | None = None) -> Jwks:
        """A set read once, which must hold a usable key (a configuration error otherwise)."""
        jwks = cls(file, url, clock, transport)
        await jwks.refresh()
        if not jwks._keys:
            raise ValueError(f"no RS256 or ES256 key with a `kid` in the JWKS at {file or url}")
        return jwks

    async def key(self, kid: str) -> PyJWK:
        if self._due(kid):
            async with self._reading:
                if self._due(kid):  # unless the read this check waited for made it fresh
                    await self._refresh()
        found = self._keys.get(kid)
        if found is None:
            raise ApiError("auth.invalid_token", f"no key with kid {kid!r}")
        return found

    async def refresh(self) -> None:
        async with self._reading:
            await self._refresh()

    async def refresh_forever(self) -> None:
        """Reads the set every `REFRESH_S`, so token checks find it fresh and do not wait (a task of the edge)."""
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.refresh()

    def _due(self, kid: str) -> bool:
        age = self._clock() - self._read_at
        return age >= REFRESH_S or (kid not in self._keys and age >= UNKNOWN_KID_REFRESH_S)

    async def _refresh(self) -> None:
        try:
            document = json.loads(await self._read())
            keys = document["keys"]
            if not isinstance(keys, list):
                raise TypeError("`keys` is not a list")
        except (OSError, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("keeping %d JWKS key(s): reading %s failed (%r)", len(self._keys), self._file or self._url, exc)
            return
        finally:
            # Once the read is over, so the checks that waited for it find the set fresh; a failed read counts
            # too (the rate limit).
            self._read_at = self._clock()
        self._keys = {}
        for entry in keys:
            try:
                key = PyJWK(entry)
            except jwt.PyJWKError as exc:
                log.warning("skipping a JWKS key: %s", exc)
                continue
            if key.key_id and key.algorithm_name in ASYMMETRIC:
                self._keys[key.key_id] = key

    async def _read(self) -> bytes:
        if self._file:
            return await asyncio.to_thread(Path(self._file).read_bytes)
        async with httpx.AsyncClient(transport=self._transport, timeout=FETCH_TIMEOUT_S) as client:
            response = await client.get(self._url)
            response.raise_for_status()
            return response.content


class TokenKeys:
    """The key and the one algorithm a token is verified with (rule 1)."""

    def __init__(self, secrets: tuple[str, ...], jwks: Jwks | None = None) -> None:
        self.secrets = secrets
        self.jwks = jwks

    async def decode(self, token: str, **options: object) -> dict[str, object]:
        """The verified claims; `options` go to `jwt.decode` (audience, issuer, leeway, required claims)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise ApiError("auth.invalid_token", f"invalid token: {exc}") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg in ASYMMETRIC and self.jwks is not None:
            if not isinstance(kid, str):
                raise ApiError("auth.invalid_token", f"an {alg} token needs a `kid`")
            key = await self.jwks.key(kid)
            if key.algorithm_name != alg:
                raise ApiError("auth.invalid_token", f"key {kid!r} is for {key.algorithm_name}, not {alg}")
            return self._decode(token, [key.key], alg, options)
        if alg == "HS256" and self.secrets:
            return self._decode(token, list(self.secrets), "HS256", options)
        raise ApiError("auth.invalid_token", f"tokens signed with {alg!r} are not accepted here")

    @staticmethod
    def _decode(token: str, keys: list[object], alg: str, options: dict[str, object]) -> dict[str, object]:
        error: jwt.PyJWTError | None = None
        for key in keys:
            try:
                claims: dict[str, object] = jwt.decode(token, key, algorithms=[alg], **options)  # type: ignore[arg-type]
                return claims
            except jwt.InvalidSignatureError as exc:  # another secret may have signed it (rotation)
                error = exc
            except jwt.PyJWTError as exc:
                raise ApiError("auth.invalid_token", f"invalid token: {exc}") from exc
        raise ApiError("auth.invalid_token", f"invalid token: {error}")

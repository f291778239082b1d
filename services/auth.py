"""Authentication of end users (JWT, PyJWT) and of backend services (service keys), and channel authorization.

An end user's id always comes from its token's `sub`; payloads never choose it. Tokens are HS256
with `PRESENCE_JWT_SECRET`, or RS256/ES256 with a key of a JWKS (services/keys.py). The optional
`channels` claim lists channel ids or glob patterns the user may join and read; without it,
every channel is allowed unless the edge runs with `PRESENCE_OPEN_CHANNELS=false`.

A service key (`psk.<name>.<secret>`, configured by `PRESENCE_SERVICE_KEYS`) is a backend's
credential, not a user's: it may read any channel and any user, and act on a user's behalf;
every such act is an event in the log that names the service.
"""

from __future__ import annotations

import fnmatch
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt

from services.errors import ApiError
from services.keys import Jwks, TokenKeys, hs256_secrets

LEEWAY_S = 5
SERVICE_KEY_PREFIX = "psk."
SERVICE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: an end user (`user_id`, from a token), or a backend service (`service` set,
    `user_id` empty: a service is nobody's presence)."""

    user_id: str
    channels: tuple[str, ...] | None  # None: no restriction
    service: str | None = None  # the service key's name
    read_users: tuple[str, ...] = ()  # the token's `read_users` claim: user ids or glob patterns it may read
    expires_at: int | None = None  # the token's `exp` in epoch ms; None for a service key

    @property
    def is_service(self) -> bool:
        return self.service is not None

    def may_access(self, channel: str) -> bool:
        if self.channels is None or self.is_service:
            return True
        return any(fnmatch.fnmatchcase(channel, pattern) for pattern in self.channels)

    def require_service(self) -> None:
        if not self.is_service:
            raise ApiError("auth.service_only", "this route takes a service key, not a user's token")

    def require_user(self) -> None:
        """A service is nobody: it acts on a user through the service routes, never as user ""."""
        if self.is_service:
            raise ApiError("auth.user_only", "a service key acts on a user through /realtime/users/{user_id}/...")

    def require_channel(self, channel: str) -> None:
        if not self.may_access(channel):
            raise ApiError("auth.channel_forbidden", f"the token does not allow channel {channel!r}")


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Strict JWT checks: HS256 with `secret` (one or several, comma-separated), RS256/ES256 with `jwks`,
    `exp` and `sub` required, `nbf`/`aud`/`iss` checked, 5 s leeway.

    Tokens without a `channels` claim may access every channel, or none when `open_channels` is
    false (what production should run: deny by default).
    """

    secret: str
    audience: str | None = None
    issuer: str | None = None
    open_channels: bool = True
    service_keys: dict[str, str] | None = None  # service name -> secret
    jwks: Jwks | None = None

    async def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise ApiError("auth.missing_token")
        if token.startswith(SERVICE_KEY_PREFIX):
            return self._service(token)
        required = ["exp", "sub", *(["aud"] if self.audience else []), *(["iss"] if self.issuer else [])]
        claims: dict[str, Any] = await TokenKeys(hs256_secrets(self.secret), self.jwks).decode(
            token, audience=self.audience, issuer=self.issuer, options={"require": required}, leeway=LEEWAY_S,
        )
        user_id, channels = claims["sub"], claims.get("channels")
        if not isinstance(user_id, str) or not user_id:
            raise ApiError("auth.invalid_token", "`sub` must be a non-empty string")
        if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            raise ApiError("auth.invalid_token", "`channels` must be a list of strings")
        read_users = claims.get("read_users", [])
        if not (isinstance(read_users, list) and all(isinstance(u, str) for u in read_users)):
            raise ApiError("auth.invalid_token", "`read_users` must be a list of strings")
        allowed = tuple(channels) if channels is not None else (None if self.open_channels else ())
        return Principal(user_id=user_id, channels=allowed, read_users=tuple(read_users),
                         expires_at=int(claims["exp"]) * 1000)

    def _service(self, key: str) -> Principal:
        name, _, secret = key[len(SERVICE_KEY_PREFIX):].partition(".")
        expected = (self.service_keys or {}).get(name)
        # Compared in constant time, so the answer's timing tells nothing of the secret.
        if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            raise ApiError("auth.invalid_token", "unknown service key")
        return Principal(user_id="", channels=None, service=name)


def service_key(name: str, secret: str) -> str:
    """The credential a service presents, as `Authorization: Bearer <key>` or `?token=<key>`."""
    return f"{SERVICE_KEY_PREFIX}{name}.{secret}"


def parse_service_keys(setting: str) -> dict[str, str]:
    """`PRESENCE_SERVICE_KEYS`: comma-separated `name=secret` pairs."""
    keys = {}
    for entry in filter(None, (e.strip() for e in setting.split(","))):
        name, sep, secret = entry.partition("=")
        if not sep or not SERVICE_NAME.fullmatch(name) or len(secret) < 16:
            raise ValueError(f"PRESENCE_SERVICE_KEYS: {entry.split('=')[0]!r} needs `name=secret`, a name of "
                             "letters, digits, _ or -, and a secret of at least 16 characters")
        keys[name] = secret
    return keys


def mint_token(secret: str, user_id: str, channels: list[str] | None = None, ttl_s: int = 3600,
               audience: str | None = None, issuer: str | None = None) -> str:
    """A development HS256 token, signed with the first of the secrets `secret` lists."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if channels is not None:
        claims["channels"] = channels
    return jwt.encode(claims, hs256_secrets(secret)[0], algorithm="HS256")


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None

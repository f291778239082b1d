"""JWT authentication (HS256, PyJWT) and channel authorization.

The user id always comes from the token's `sub`; payloads never choose it. The optional
`channels` claim lists channel ids or glob patterns the user may join and read; without it,
every channel is allowed unless the edge runs with `PRESENCE_OPEN_CHANNELS=false`.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass

import jwt

from services.errors import ApiError

ALGORITHMS = ["HS256"]
LEEWAY_S = 5


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    channels: tuple[str, ...] | None  # None: no restriction

    def may_access(self, channel: str) -> bool:
        if self.channels is None:
            return True
        return any(fnmatch.fnmatchcase(channel, pattern) for pattern in self.channels)

    def require_channel(self, channel: str) -> None:
        if not self.may_access(channel):
            raise ApiError("auth.channel_forbidden", f"the token does not allow channel {channel!r}")


@dataclass(frozen=True, slots=True)
class Authenticator:
    """Strict JWT checks: HS256 only, `exp` and `sub` required, `nbf`/`aud`/`iss` checked, 5 s leeway.

    Tokens without a `channels` claim may access every channel, or none when `open_channels` is
    false (what production should run: deny by default).
    """

    secret: str
    audience: str | None = None
    issuer: str | None = None
    open_channels: bool = True

    def authenticate(self, token: str | None) -> Principal:
        if not token:
            raise ApiError("auth.missing_token")
        required = ["exp", "sub", *(["aud"] if self.audience else []), *(["iss"] if self.issuer else [])]
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                options={"require": required}, leeway=LEEWAY_S,
            )
        except jwt.PyJWTError as exc:
            raise ApiError("auth.invalid_token", f"invalid token: {exc}") from exc
        user_id, channels = claims["sub"], claims.get("channels")
        if not isinstance(user_id, str) or not user_id:
            raise ApiError("auth.invalid_token", "`sub` must be a non-empty string")
        if channels is not None and not (isinstance(channels, list) and all(isinstance(c, str) for c in channels)):
            raise ApiError("auth.invalid_token", "`channels` must be a list of strings")
        if channels is None:
            return Principal(user_id=user_id, channels=None if self.open_channels else ())
        return Principal(user_id=user_id, channels=tuple(channels))


def mint_token(secret: str, user_id: str, channels: list[str] | None = None, ttl_s: int = 3600,
               audience: str | None = None, issuer: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"sub": user_id, "iat": now, "exp": now + ttl_s}
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if channels is not None:
        claims["channels"] = channels
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return None

"""What the client raises.

    PresenceClientError          every error of this package
    ├── PresenceError            the service answered with a stable error code (docs/errors.md)
    │   ├── AuthenticationError  the token was refused, or expired on an open socket (401, close 4401)
    │   └── ForcedOfflineError   connection.forced_offline: a service took the user offline (close 4409)
    ├── ConnectError             the first socket could not be opened (network, handshake without an answer)
    └── ClientClosedError        the client is closed, by `close()` or after an error that ends it

Errors that end the client (the two subclasses, and `auth.origin_forbidden`, close 4403) are raised
by every pending and later call, and by `changes()` iterators.
"""

from __future__ import annotations

from typing import Any


class PresenceClientError(Exception):
    pass


class PresenceError(PresenceClientError):
    def __init__(self, code: str, message: str = "", retriable: bool = False) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.retriable = retriable

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> PresenceError:
        """From an `error` frame or a REST error's `error` object; picks the subclass by code."""
        code = str(body.get("code", "server.internal"))
        kind = ForcedOfflineError if code == "connection.forced_offline" else (
            AuthenticationError if code in CREDENTIAL_REFUSED else cls
        )
        return kind(code, str(body.get("message", "")), bool(body.get("retriable", False)))


class AuthenticationError(PresenceError):
    pass


class ForcedOfflineError(PresenceError):
    pass


class ConnectError(PresenceClientError):
    pass


class ClientClosedError(PresenceClientError):
    pass


# The credential itself was refused; other auth.* codes refuse one request and the socket goes on.
CREDENTIAL_REFUSED = frozenset({"auth.missing_token", "auth.invalid_token", "auth.token_expired"})

"""A socket lives no longer than its token: `auth.expiring` is pushed shortly before the token's `exp`, and at
expiry the socket is closed with `auth.token_expired` (4401). An `auth` frame with a fresh token of the same user
times the new expiry (services/session.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from services.errors import ApiError
from services.event_log import now_ms

EXPIRING_NOTICE_MS = 30_000  # `auth.expiring` comes this long before the token expires (or at half its life left)


class TokenLifetime:
    """Timers on the event loop for the token's expiry: the notice, then the close."""

    def __init__(self, reply: Callable[[dict[str, Any]], None], expel: Callable[[ApiError], None]) -> None:
        self._reply = reply
        self._expel = expel
        self._timers: list[asyncio.TimerHandle] = []

    def time(self, expires_at: int | None) -> None:
        """Times `expires_at` (epoch ms), replacing the timers of the token before it."""
        self.cancel()
        if expires_at is None:  # a service key does not expire
            return
        loop = asyncio.get_running_loop()
        left_ms = expires_at - now_ms()
        notice_ms = left_ms - min(EXPIRING_NOTICE_MS, left_ms / 2)
        self._timers = [
            loop.call_later(max(notice_ms, 0) / 1000, self._expiring, expires_at),
            loop.call_later(max(left_ms, 0) / 1000, self._expel, ApiError("auth.token_expired")),
        ]

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def _expiring(self, expires_at: int) -> None:
        self._reply({"type": "auth.expiring", "token_expires_at": expires_at})

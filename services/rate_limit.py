"""The frame rate limit of one WebSocket connection (services/session.py takes a token per frame)."""

from __future__ import annotations

import time

from services.errors import ApiError


class RateLimit:
    """A token bucket per connection: `rate` frames a second, bursts of twice that.

    A frame over the limit is answered `limit.rate` and dropped; a client that keeps pushing
    (as many dropped frames in a row as the burst) is disconnected with `limit.abuse`.
    """

    def __init__(self, rate: float) -> None:
        self.rate, self.burst = rate, 2 * rate
        self.tokens, self.stamp, self.dropped = self.burst, time.monotonic(), 0

    def take(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.dropped = 0
            return
        self.dropped += 1
        raise ApiError("limit.abuse" if self.dropped > self.burst else "limit.rate")

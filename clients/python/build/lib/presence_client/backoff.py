"""Reconnect delays: exponential backoff with full jitter, capped, reset after a healthy connection.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the reconnects of many
clients dropped by the same edge, so they do not come back in waves.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    healthy_after_s: float = 10.0  # a connection that lasted this long starts the next retries afresh
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def ceiling(self) -> float:
        return min(self.cap_s, self.base_s * 2.0**self.attempts)

    def next_delay(self) -> float:
        delay = self.rng.uniform(0, self.ceiling())
        self.attempts = min(self.attempts + 1, 64)  # 2**64 * base is past any cap
        return delay

    def connection_ended(self, lasted_s: float) -> None:
        if lasted_s >= self.healthy_after_s:
            self.attempts = 0

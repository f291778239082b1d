"""A generated day of presence traffic, folded through the pure core, and its analytics.

    python -m bench.generated_day --out docs/analytics [--users 300] [--channels 12] [--seed 14]
                                  [--changes day.jsonl]

Each user's day is drawn from a seeded random generator: sessions that start more often in the
afternoon than at night (a diurnal curve), each one connection that joins a few channels (some
channels far more popular than others), heartbeats, typing bursts, channel hops, statuses set for a
while, sometimes invisibility; a session ends with a clean close, or a drop that times out after
the reconnect grace. The events go through `streams.core.apply` one user at a time, and whatever
expires (typing, statuses, auto-away, dropped connections) expires through `streams.core.due_events`
at the first whole second it is due, as the sweeper would write it. The changes are measured over
the day 2026-01-01 UTC (some sessions begin the evening before) with 15-minute buckets; the summary
is printed and the plots written to --out. --changes also writes the change log as JSON lines, for
`presence analytics --changes`.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from schemas.changes import Change
from schemas.codec import encode
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    Event,
    Heartbeat,
    PresenceUpdated,
    TypingStarted,
    TypingStopped,
)
from schemas.state import UserPresence
from services.analytics_command import summary
from services.analytics_output import plot
from streams.analytics import Window, analyze
from streams.core import apply, due_events

DAY = 1767225600000  # 2026-01-01T00:00:00Z
HOUR, MINUTE, SECOND = 3_600_000, 60_000, 1000
BUCKET = 15 * MINUTE
TIMEOUT = 10 * MINUTE  # a long presence timeout: heartbeats every few minutes keep a connection
IDLE_AFTER = 5 * MINUTE
GRACE = 15 * SECOND
TYPING_FOR = 6 * SECOND
DEVICES = ("web", "ios", "android")


@dataclass(frozen=True, slots=True)
class Plan:
    users: int = 300
    channels: int = 12
    seed: int = 14


def activity(hour: float) -> float:
    """How likely a session starts at this hour of the day, relative to the afternoon peak."""
    return (0.06 + 0.9 * math.exp(-(((hour - 14.5) / 3.5) ** 2))
            + 0.35 * math.exp(-(((hour - 20.5) / 1.5) ** 2)))


class UserDay:
    """One user's events of the day, drawn in time order."""

    def __init__(self, rng: random.Random, user_id: str, channels: list[str], popularity: list[float]) -> None:
        self.rng, self.user_id, self.channels, self.popularity = rng, user_id, channels, popularity
        self.events: list[Event] = []

    def event(self, cls: type[Event], at: int, connection_id: str, **fields: object) -> None:
        self.events.append(cls(event_id=f"{self.user_id}-{len(self.events)}", user_id=self.user_id,
                               connection_id=connection_id, edge_id="edge-1", at=at, **fields))

    def draw(self) -> list[Event]:
        ends = DAY - 2 * HOUR
        for n, (start, length) in enumerate(sorted(self.sessions())):
            if start > ends + MINUTE:
                self.session(f"{self.user_id}-c{n}", start, start + length)
                ends = start + length
        return self.events

    def sessions(self) -> Iterator[tuple[int, int]]:
        rng = self.rng
        for _ in range(rng.choice((0, 1, 1, 2, 2, 2, 3, 3, 4))):
            while True:  # a start drawn from the diurnal curve, from the evening before to the day's end
                start = DAY - 2 * HOUR + rng.randrange(26 * HOUR)
                if rng.random() < activity((start - DAY) / HOUR % 24):
                    break
            yield start, round(rng.lognormvariate(math.log(40 * MINUTE), 0.8))

    def session(self, connection_id: str, start: int, end: int) -> None:
        rng = self.rng
        self.event(ConnectionOpened, start, connection_id, timeout_ms=TIMEOUT, device=rng.choice(DEVICES),
                   idle_after_ms=IDLE_AFTER)
        joined = self.pick(rng.choice((1, 1, 2, 2, 3)))
        for channel in joined:
            self.event(ChannelJoined, start + rng.randrange(1, 3 * SECOND), connection_id, channel=channel)
        at, beat = start + 5 * SECOND, start
        while True:
            at += round(rng.expovariate(1 / (5 * MINUTE)))
            while beat + 4 * MINUTE < min(at, end):  # heartbeats; busy for some of them (auto-away otherwise)
                beat += 4 * MINUTE
                self.event(Heartbeat, beat, connection_id, active_at=beat if rng.random() < 0.5 else None)
            if at >= end:
                break
            self.action(connection_id, at, joined)
        if rng.random() < 0.8:
            self.event(ConnectionClosed, end, connection_id)
        else:
            self.event(ConnectionDropped, end, connection_id, grace_ms=GRACE)

    def action(self, connection_id: str, at: int, joined: list[str]) -> None:
        rng = self.rng
        roll = rng.random()
        if roll < 0.6 and joined:
            channel = rng.choice(joined)
            for burst in range(rng.randrange(1, 4)):
                t = at + burst * 20 * SECOND
                self.event(TypingStarted, t, connection_id, channel=channel, expires_at=t + TYPING_FOR)
                if rng.random() < 0.7:  # else it expires
                    self.event(TypingStopped, t + rng.randrange(SECOND, 5 * SECOND), connection_id, channel=channel)
        elif roll < 0.75:
            others = [c for c in self.channels if c not in joined]
            if joined and (rng.random() < 0.5 or not others):
                left = joined.pop(rng.randrange(len(joined)))
                self.event(ChannelLeft, at, connection_id, channel=left)
            elif others:
                channel = rng.choices(others, [self.popularity[self.channels.index(c)] for c in others])[0]
                joined.append(channel)
                self.event(ChannelJoined, at, connection_id, channel=channel)
        elif roll < 0.8:
            status = rng.choice(("busy", "dnd", "busy"))
            self.event(PresenceUpdated, at, connection_id, status=status,
                       expires_at=at + rng.randrange(10 * MINUTE, 40 * MINUTE))
        elif roll < 0.83:
            self.event(PresenceUpdated, at, connection_id, status="invisible", visible=False)
        else:
            self.event(PresenceUpdated, at, connection_id, status="online")

    def pick(self, n: int) -> list[str]:
        chosen: list[str] = []
        while len(chosen) < min(n, len(self.channels)):
            channel = self.rng.choices(self.channels, self.popularity)[0]
            if channel not in chosen:
                chosen.append(channel)
        return chosen


def folded(events: list[Event], until: int) -> list[Change]:
    """One user's events through the core, with the sweeper's expiries at the first whole second due."""
    state: UserPresence | None = None
    changes: list[Change] = []
    swept = events[0].at if events else until

    def sweep(now: int) -> None:
        nonlocal state, swept
        while state is not None and due_events(state, now, "sweeper"):
            lo, hi = swept // SECOND, now // SECOND  # the first second due, else `now` itself
            due_at = now
            if hi > lo and due_events(state, hi * SECOND, "sweeper"):
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (lo, mid) if due_events(state, mid * SECOND, "sweeper") else (mid, hi)
                due_at = hi * SECOND
            for expiry in due_events(state, due_at, "sweeper"):
                state, new = apply(state, expiry)
                changes.extend(new)
            swept = due_at

    for event in sorted(events, key=lambda e: e.at):  # stable: a user's events at one instant keep their order
        sweep(event.at)
        state, new = apply(state, event)
        changes.extend(new)
        swept = max(swept, event.at)
    sweep(until)
    return changes


def generate(plan: Plan) -> list[Change]:
    rng = random.Random(plan.seed)
    channels = [f"channel-{n + 1:02}" for n in range(plan.channels)]
    popularity = [1 / (n + 1) for n in range(plan.channels)]  # Zipf: channel-01 is the busiest
    changes: list[Change] = []
    for n in range(plan.users):
        events = UserDay(rng, f"user-{n + 1:03}", channels, popularity).draw()
        changes += folded(events, DAY + 26 * HOUR)
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/analytics"))
    default = Plan()
    parser.add_argument("--users", type=int, default=default.users)
    parser.add_argument("--channels", type=int, default=default.channels)
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--changes", type=Path, help="also write the change log here, one JSON record a line")
    args = parser.parse_args()
    changes = generate(Plan(args.users, args.channels, args.seed))
    if args.changes:
        args.changes.write_bytes(b"".join(encode(c) + b"\n" for c in changes))
    analytics = analyze(changes, Window(DAY, DAY + 24 * HOUR, BUCKET))
    paths = plot(analytics, args.out)
    print(summary(analytics, len(changes)))
    for path in paths:
        print(f"wrote     {path}")


if __name__ == "__main__":
    main()

"""A recorded log for the history tests and benchmarks: sessions of many users, as edges would have
written them, produced straight to `presence.events` (the processor folds them like any other records).

Deterministic for a seed and a start time: devices connect, join channels, heartbeat with activity,
change status and text, type, leave, and close or drop. Connections dropped or left open are timed out by the
sweeper, which writes those events into the same log; a fifth of them have an hour's timeout, and
are still online when the log ends.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from schemas.codec import encode
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    Event,
    EventBatch,
    Heartbeat,
    PresenceUpdated,
    TypingStarted,
    TypingStopped,
)
from schemas.topics import EVENTS, batch_key, partition_for

EDGE = "recorded-edge"
EVENTS_PER_RECORD = 250
STATUSES = ("online", "away", "busy", "online")


@dataclass(frozen=True)
class Recorded:
    start: int  # the time of the first session's start, UTC epoch ms
    span_ms: int  # sessions start in the first half of it and end within it
    events: int


def sessions(users: int, channels: int, start_ms: int, span_ms: int, seed: int = 7,
             prefix: str = "rec") -> list[Event]:
    """About 100 events per user: one or two sessions each, heartbeats every 5 s while connected."""
    rng = random.Random(seed)
    events: list[Event] = []
    for n in range(users):
        user = f"{prefix}-u{n}"
        for session in range(rng.choice((1, 2))):
            conn = f"{user}-c{session}"
            begin = start_ms + rng.randrange(span_ms // 2)
            length = rng.randrange(span_ms // 8, span_ms // 2)
            common = {"user_id": user, "connection_id": conn, "edge_id": EDGE}

            def at(t: int, common: dict[str, str] = common) -> dict[str, object]:
                return {**common, "event_id": uuid.UUID(int=rng.getrandbits(128)).hex, "at": t}

            rooms = rng.sample(range(channels), rng.choice((1, 2, 3)))
            fate = rng.random()  # closed, dropped, or still connected when the log ends
            timeout = 30_000 if fate < 0.8 else 3_600_000
            events.append(ConnectionOpened(**at(begin), timeout_ms=timeout, device=rng.choice(("web", "ios")),
                                           idle_after_ms=rng.choice((None, 60_000))))
            events += [ChannelJoined(**at(begin + 1 + i), channel=f"{prefix}-room-{r}") for i, r in enumerate(rooms)]
            for t in range(begin + 5_000, begin + length, 5_000):
                events.append(Heartbeat(**at(t), active_at=t - rng.randrange(5_000)))
                roll = rng.random()
                room = f"{prefix}-room-{rng.choice(rooms)}"
                if roll < 0.04:
                    status = rng.choice(STATUSES)
                    events.append(PresenceUpdated(**at(t + 1), status=status, status_text=f"{status} at {t % 1000}"))
                elif roll < 0.08:
                    events.append(TypingStarted(**at(t + 1), channel=room, expires_at=t + 6_000))
                    if rng.random() < 0.5:
                        events.append(TypingStopped(**at(t + 2_000), channel=room))
            end = begin + length
            if rng.random() < 0.5:
                events.append(ChannelLeft(**at(end - 1), channel=f"{prefix}-room-{rooms[0]}"))
            if fate < 0.6:
                events.append(ConnectionClosed(**at(end)))
            elif fate < 0.8:
                events.append(ConnectionDropped(**at(end), grace_ms=10_000))
            # else: connected for an hour more, unless the sweeper finds its timeout passed
    events.sort(key=lambda e: e.at)
    return events


async def produce(bootstrap: str, events: list[Event], partitions: int) -> int:
    """The events as `EventBatch` records in their users' partitions, in time order; the number of records."""
    by_partition: dict[int, list[Event]] = defaultdict(list)
    for event in events:
        by_partition[partition_for(event.user_id, partitions)].append(event)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_request_size=4 << 20)
    await producer.start()
    records = 0
    try:
        for partition, logged in by_partition.items():
            for start in range(0, len(logged), EVENTS_PER_RECORD):
                batch = logged[start:start + EVENTS_PER_RECORD]
                await producer.send(EVENTS.name, encode(EventBatch(events=tuple(batch))),
                                    key=batch_key(e.user_id for e in batch), partition=partition)
                records += 1
        await producer.flush()
    finally:
        await producer.stop()
    return records

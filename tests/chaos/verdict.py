"""What the log says, what the processor published, and how they differ.

- Lost: an event id the edge acknowledged that is not in `presence.events`.
- Divergent: a user whose latest `UserView` on `presence.users` differs from the reference fold of
  `presence.events` (`tests/oracle.py`, written apart from `streams.core`).
- Timeouts the log justifies: `connection.timed_out` events that take effect in the reference
  fold, with the gap between the connection's last heartbeat in the log and the timeout.
- Ghost time: from a connection's last heartbeat in the log to the moment its user was seen
  leaving (by an observer) and to the first offline view on `presence.users`.

Topics are read from offset 0 to the highwater their fetches report (as `tests/integration/log.py`),
once: a `Tail` keeps its consumer and only reads what is new on the next call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.changes import UserView
from schemas.codec import DecodeError, decode, to_builtins
from schemas.events import ConnectionDropped, ConnectionOpened, ConnectionTimedOut, Event, EventBatch, Heartbeat
from schemas.topics import EVENTS, USERS
from tests import oracle

T = TypeVar("T")


class Tail(Generic[T]):
    """A topic read from the start, each record decoded once; `read()` catches up to the end."""

    def __init__(self, bootstrap: str, topic: str, convert: Callable[[Any], T | None]) -> None:
        self.bootstrap, self.topic, self.convert = bootstrap, topic, convert
        self.items: dict[int, list[T]] = {}  # partition -> decoded records, in offset order
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []

    async def read(self, timeout_s: float = 180) -> dict[int, list[T]]:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                              fetch_max_wait_ms=5, max_partition_fetch_bytes=4 * 2**20)
            await self._consumer.start()
            partitions = self._consumer.partitions_for_topic(self.topic)
            if not partitions:
                await self._consumer.topics()
                partitions = self._consumer.partitions_for_topic(self.topic) or set()
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning(*self._partitions)
            self.items = {tp.partition: [] for tp in self._partitions}
        consumer = self._consumer
        deadline = time.monotonic() + timeout_s
        done: set[TopicPartition] = set()  # read up to the highwater of a fetch made during this call
        while len(done) < len(self._partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {self.topic} to its end")
            for tp, records in (await consumer.getmany(timeout_ms=200, max_records=5000)).items():
                converted = self.items[tp.partition]
                for record in records:
                    item = self.convert(record)
                    if item is not None:
                        converted.append(item)
            for tp in self._partitions:
                highwater = consumer.highwater(tp)
                if highwater is not None and await consumer.position(tp) >= highwater:
                    done.add(tp)
            await asyncio.sleep(0)
        return self.items

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


class Batch(NamedTuple):
    offset: int
    written: int  # the record's timestamp: when its producer sent it, wall ms
    events: tuple[Event, ...]


class Published(NamedTuple):
    offset: int
    written: int
    user_id: str
    view: UserView | None  # None: a tombstone, the processor forgot the user


def _events(record: Any) -> Batch | None:
    try:
        return Batch(record.offset, record.timestamp, decode(record.value, EventBatch).events)
    except DecodeError:
        return None  # set aside by the processor as a dead letter


def _view(record: Any) -> Published:
    view = None if record.value is None else decode(record.value, UserView)
    return Published(record.offset, record.timestamp, record.key.decode(), view)


@dataclass
class LogTimeout:
    event_id: str
    user_id: str
    connection_id: str
    at: int
    last_heartbeat: int
    dropped: bool

    @property
    def gap_ms(self) -> int:
        return self.at - self.last_heartbeat


@dataclass
class Verdict:
    events: int
    users: int
    acked: int
    lost: list[str]
    divergent: dict[str, dict[str, Any]]
    log_timeouts: list[LogTimeout]
    last_heartbeat: dict[str, int]  # connection id -> latest heartbeat (or opening) `at` in the log
    offline_views: dict[str, list[int]] = field(default_factory=dict)  # user -> record times of offline views
    dropped_at: dict[str, int] = field(default_factory=dict)  # connection id -> `at` of its drop
    logged_at: dict[str, int] = field(default_factory=dict)  # timeout and drop event id -> its record's time
    records: dict[int, list[Batch]] = field(default_factory=dict, repr=False)
    views: dict[int, list[Published]] = field(default_factory=dict, repr=False)

    def history(self, user_id: str, since: int = 0) -> dict[str, list[str]]:
        """A user's events other than heartbeats (partition/offset, written, id, fields set), and its
        published views, from wall ms `since`: the evidence for a divergence."""
        events, views = [], []
        for partition, batches in self.records.items():
            for b in batches:
                for e in b.events:
                    if e.user_id == user_id and not isinstance(e, Heartbeat) and b.written >= since:
                        fields = {k: v for k, v in to_builtins(e).items() if v is not None and k not in (
                            "user_id", "edge_id", "v", "event_id", "connection_id", "type")}
                        events.append(f"{partition}/{b.offset} written={b.written} {e.type} {e.event_id[:12]} "
                                      f"conn={e.connection_id[:8]} {fields}")
        for partition, published in self.views.items():
            for p in published:
                if p.user_id != user_id or p.written < since:
                    continue
                if p.view is None:
                    views.append(f"{partition}/{p.offset} written={p.written} tombstone")
                else:
                    views.append(f"{partition}/{p.offset} written={p.written} event={p.view.event_id[:12]} "
                                 f"status={p.view.status} text={p.view.status_text} emoji={p.view.status_emoji} "
                                 f"connections={p.view.connections}")
        return {"events": events, "views": views}

    def trace(self, connection_id: str, since: int, until: int) -> list[str]:
        """The connection's events stamped in [since, until], as "type at=<ms> written=<ms>", in ms
        after `since`: whether a gap is in when the edge saw frames (`at`) or when it wrote them."""
        found = []
        for partition in self.records.values():
            for b in partition:
                for e in b.events:
                    if e.connection_id == connection_id and since <= e.at <= until:
                        found.append((e.at, f"{e.type} at={e.at - since} written={b.written - since}"))
        return [line for _, line in sorted(found)]

    def heartbeat_before(self, connection_id: str, until: int) -> int:
        """The connection's latest heartbeat (or opening) `at` in the log that is not after `until`."""
        return max(e.at for partition in self.records.values() for b in partition for e in b.events
                   if e.connection_id == connection_id and isinstance(e, Heartbeat | ConnectionOpened)
                   and e.at <= until)

    def timeline(self, user_id: str, connection_id: str, last: int) -> dict[str, int | None]:
        """A connection's end, in ms after its last heartbeat `last`: drop, timeout (as stamped and
        as written), first offline view."""
        timeout = next((t for t in self.log_timeouts if t.connection_id == connection_id), None)
        offline = [t - last for t in self.offline_views.get(user_id, []) if t >= last]
        return {
            "dropped": self.dropped_at[connection_id] - last if connection_id in self.dropped_at else None,
            "timeout stamped": timeout.at - last if timeout else None,
            "timeout written": self.logged_at[timeout.event_id] - last if timeout else None,
            "offline view": min(offline) if offline else None,
        }

    def summary(self) -> dict[str, Any]:
        return {"events in log": self.events, "users": self.users, "acknowledged updates": self.acked,
                "lost acknowledged": len(self.lost), "divergent users": len(self.divergent)}


class Log:
    """`presence.events` and `presence.users`, tailed."""

    def __init__(self, bootstrap: str) -> None:
        self.events = Tail(bootstrap, EVENTS.name, _events)
        self.views = Tail(bootstrap, USERS.name, _view)
        self.read_s: list[float] = []  # how long each verdict took to read the topics

    async def verdict(self, acked: Iterable[str]) -> Verdict:
        t0 = time.monotonic()
        batches = await self.events.read()
        views_by_partition = await self.views.read()
        self.read_s.append(round(time.monotonic() - t0, 1))
        events = [e for partition in sorted(batches) for b in batches[partition] for e in b.events]
        logged_at = {e.event_id: b.written for partition in batches.values() for b in partition for e in b.events
                     if isinstance(e, ConnectionTimedOut | ConnectionDropped)}
        ids = {e.event_id for e in events}
        acked = list(acked)
        lost = [event_id for event_id in acked if event_id not in ids]
        expected, timeouts = fold_with_timeouts(events)
        latest: dict[str, UserView] = {}
        offline: dict[str, list[int]] = {}
        for partition in sorted(views_by_partition):
            for _, written, user_id, view in views_by_partition[partition]:
                if view is None:
                    latest.pop(user_id, None)
                    continue
                latest[user_id] = view
                if not view.online:
                    offline.setdefault(user_id, []).append(written)
        divergent = {}
        for user_id, user in expected.items():
            want = oracle.expected_view(user)
            got = oracle.published_view(latest[user_id]) if user_id in latest else None
            if want != got:
                divergent[user_id] = {"expected": want, "published": got}
        # Users the processor still shows although the reference fold forgot them.
        for user_id in latest.keys() - expected.keys():
            divergent[user_id] = {"expected": None, "published": oracle.published_view(latest[user_id])}
        last_heartbeat: dict[str, int] = {}
        for e in events:
            if isinstance(e, Heartbeat | ConnectionOpened):
                last_heartbeat[e.connection_id] = max(e.at, last_heartbeat.get(e.connection_id, 0))
        dropped = {e.connection_id: e.at for e in events if isinstance(e, ConnectionDropped)}
        return Verdict(len(events), len(expected), len(acked), lost, divergent, timeouts, last_heartbeat, offline,
                       dropped, logged_at, batches, views_by_partition)

    async def settled_verdict(self, acked: Iterable[str], timeout_s: float,
                              quiet_s: float = 0) -> tuple[Verdict, float]:
        """The verdict once the published views agree with the log, or at the deadline; and how long that took."""
        acked = list(acked)
        t0 = time.monotonic()
        await asyncio.sleep(quiet_s)
        while True:
            verdict = await self.verdict(acked)
            if not verdict.divergent or time.monotonic() - t0 > timeout_s:
                return verdict, time.monotonic() - t0
            await asyncio.sleep(1)

    def deepest(self) -> dict[str, int]:
        """Records read from the fullest partition of each topic (the embedded broker slows down
        sharply beyond about 8,000 record batches in one partition; see docs/reliability.md)."""
        return {tail.topic: max((len(items) for items in tail.items.values()), default=0)
                for tail in (self.events, self.views)}

    async def close(self) -> None:
        await self.events.close()
        await self.views.close()


def fold_with_timeouts(events: Iterable[Event]) -> tuple[dict[str, oracle.Expected], list[LogTimeout]]:
    """`oracle.fold`, noting every timeout that takes effect."""
    users: dict[str, oracle.Expected] = {}
    timeouts = []
    for e in events:
        user = users.get(e.user_id)
        conn = user.conns.get(e.connection_id) if user is not None and isinstance(e, ConnectionTimedOut) else None
        oracle.take(users, e)
        if conn is not None and e.connection_id not in users[e.user_id].conns:
            dropped = conn.dropped_at is not None
            timeouts.append(LogTimeout(e.event_id, e.user_id, e.connection_id, e.at, conn.last_heartbeat, dropped))
    return users, timeouts

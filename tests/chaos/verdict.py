"""What the log says, what the processor published, and how they differ.

- Lost: an event id the edge acknowledged that is not in `presence.events`.
- Divergent: a user whose latest `UserView` on `presence.users` differs from the reference fold of
  `presence.events` (`tests/oracle.py`, written apart from `streams.core`).
- Timeouts the log justifies: `connection.timed_out` events that take effect in the reference
  fold, with the gap between the connection's last heartbeat in the log and the timeout.
- Ghost time: from a connection's last heartbeat in the log to the moment its user was seen
  leaving (by an observer) and to the first offline view on `presence.users`.
- Exactly once (promise 3): every record of `presence.channels` that repeats a (channel, seq)
  must repeat its view; the frames a subscriber got, deduplicated by seq, must cover each seq of
  the log once, without a gap, each equal to the log's view with that seq (`ChannelLog`,
  `seen_once`).

Topics are read from offset 0 to the highwater their fetches report (as `tests/integration/log.py`),
once: a `Tail` keeps its consumer and only reads what is new on the next call.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Generic, NamedTuple, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.changes import ChannelView, UserView
from schemas.codec import DecodeError, decode, decode_change, to_builtins
from schemas.events import (
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    EdgeLeased,
    Event,
    EventBatch,
    Heartbeat,
)
from schemas.topics import CHANNEL_CHANGES, CHANNELS, EVENTS, USERS
from services import representation
from services.broker import topic_partitions
from services.fanout import _Batch
from streams.channels import apply_member_change
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
                                              fetch_max_wait_ms=100, max_partition_fetch_bytes=4 * 2**20)
            await self._consumer.start()
            self._partitions = await topic_partitions(self._consumer, self.topic)
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning(*self._partitions)
            self.items = {tp.partition: [] for tp in self._partitions}
        consumer = self._consumer
        deadline = time.monotonic() + timeout_s
        started_ms = int(time.time() * 1000)
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
                # The highwater of a fetch answered during this call: the consumer fetches a partition
                # again only once its buffered records are consumed, so an older one can be long stale.
                highwater = consumer.highwater(tp)
                fresh = (consumer.last_poll_timestamp(tp) or 0) >= started_ms
                if fresh and highwater is not None and await consumer.position(tp) >= highwater:
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
        """The last time, not after `until`, the log vouched for the connection (`last_vouched`)."""
        return last_vouched(self.records, connection_id, until)

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
        expected, timeouts = fold_with_timeouts(batches)
        timeouts = [vouched_until(t, batches) for t in timeouts]
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
            want = None if user.gone else oracle.expected_view(user)  # gone: erased or forgotten, no view
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

    async def follow(self, stop: asyncio.Event) -> None:
        """Reads along while the run goes, so the verdicts at the end read only what is new: the embedded
        broker's fetches get slower as a partition grows (docs/reliability.md, defect C), and read at the
        end, 5,000 records of one partition once took longer than `Tail.read`'s deadline."""
        while not stop.is_set():
            await self.events.read()
            await self.views.read()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1)

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


def fold_with_timeouts(batches: dict[int, list[Batch]]) -> tuple[dict[str, oracle.Expected], list[LogTimeout]]:
    """`oracle.take` over each partition in log order, with that partition's leases, noting every
    timeout that takes effect."""
    users: dict[str, oracle.Expected] = {}
    timeouts = []
    for partition in sorted(batches):
        leases: oracle.Leases = {}
        for e in (e for b in batches[partition] for e in b.events):
            user = users.get(e.user_id)
            conn = user.conns.get(e.connection_id) if user is not None and isinstance(e, ConnectionTimedOut) else None
            oracle.take(users, e, leases)
            if conn is not None and e.connection_id not in users[e.user_id].conns:
                dropped = conn.dropped_at is not None
                timeouts.append(LogTimeout(e.event_id, e.user_id, e.connection_id, e.at, conn.last_heartbeat,
                                           dropped))
    return users, timeouts


def vouched_until(timeout: LogTimeout, batches: dict[int, list[Batch]]) -> LogTimeout:
    """The timeout with `last_heartbeat` moved to the last time the log vouched for the connection
    before it (`last_vouched`); a dropped connection is judged by its drop and grace alone."""
    if timeout.dropped:
        return timeout
    return replace(timeout, last_heartbeat=last_vouched(batches, timeout.connection_id, timeout.at))


def last_vouched(batches: dict[int, list[Batch]], connection_id: str, until: int) -> int:
    """The last time, not after `until`, the log vouched for the connection: its own heartbeats (or
    opening), or a renewal of its edge's lease in its partition that covers it (`edge.leased`)."""
    for partition in batches.values():
        events = [e for b in partition for e in b.events if e.at <= until]
        own = [e for e in events if e.connection_id == connection_id and isinstance(e, Heartbeat | ConnectionOpened)]
        opened = next((e for e in own if isinstance(e, ConnectionOpened)), None)
        if opened is None:
            continue
        renewals = [e.at for e in events if isinstance(e, EdgeLeased) and e.edge_id == opened.edge_id
                    and e.since <= opened.at]
        return max([e.at for e in own] + renewals)
    raise ValueError(f"connection {connection_id} has no opening in the log before {until}")


# -- exactly once (promise 3) -----------------------------------------------------------------------


class ChannelRecord(NamedTuple):
    partition: int
    offset: int
    written: int
    channel: str
    view: ChannelView | None  # None: a tombstone, the processor forgot the channel


def _channel_record(record: Any) -> ChannelRecord:
    view = None if record.value is None else decode(record.value, ChannelView)
    return ChannelRecord(record.partition, record.offset, record.timestamp, record.key.decode(), view)


@dataclass
class ChannelFacts:
    """What `presence.channels` holds, per channel, in offset order (a channel is in one partition)."""

    records: int = 0
    views: dict[str, dict[int, ChannelView]] = field(default_factory=dict)  # channel -> seq -> first view
    republished: dict[tuple[str, int], int] = field(default_factory=dict)  # (channel, seq) -> extra records
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # a seq republished with another view
    gaps: list[dict[str, Any]] = field(default_factory=list)  # a new seq that is not the last + 1 in its life
    life_starts: dict[str, set[int]] = field(default_factory=dict)  # channel -> first seq of each life
    last: dict[str, int] = field(default_factory=dict)  # channel -> seq of its last record (0: tombstone)
    changes: int = 0  # records of `presence.channel-changes` for these channels: the channel stage's input
    changes_again: int = 0  # of those, records repeating a change id (a redo of the user stage)
    unlike_one_pass: list[dict[str, Any]] = field(default_factory=list)  # channels whose views differ from it
    reapplied: int = 0  # views that apply a change an earlier view of the channel applied already
    furthest_copy: int = 0  # most changes of a channel between a change and a copy of it
    changes_of: dict[str, list[ChangeRecord]] = field(default_factory=dict, repr=False)

    def dump(self, channel: str) -> list[str]:
        """The channel's changes and views, one a line, in log order: evidence for a difference."""
        lines = [f"change {c.partition}/{c.offset} {c.change.type} {c.change_id} user={c.change.user_id} "
                 f"at={c.change.at} " + str({k: v for k, v in to_builtins(c.change).items()
                                             if k in ("member", "reason", "typing", "empty_since")})
                 for c in self.changes_of.get(channel, [])]
        return lines + [f"view {brief(v)}" for v in self.views.get(channel, {}).values()]

    @classmethod
    def of(cls, partitions: dict[int, list[ChannelRecord]], channels: Iterable[str] | None = None) -> ChannelFacts:
        wanted = None if channels is None else set(channels)
        facts = cls()
        top: dict[str, int] = {}  # channel -> highest seq of its current life (0: no life)
        for partition in sorted(partitions):
            for r in partitions[partition]:
                if wanted is not None and r.channel not in wanted:
                    continue
                facts.records += 1
                if r.view is None:
                    top[r.channel] = 0
                    facts.last[r.channel] = 0
                    continue
                seq = r.view.seq
                facts.last[r.channel] = seq
                seen = facts.views.setdefault(r.channel, {})
                if seq in seen:
                    key = (r.channel, seq)
                    facts.republished[key] = facts.republished.get(key, 0) + 1
                    if r.view != seen[seq]:
                        facts.conflicts.append({
                            "channel": r.channel, "seq": seq, "record": f"{partition}/{r.offset}",
                            "first": to_builtins(seen[seq]), "again": to_builtins(r.view)})
                    continue
                seen[seq] = r.view
                if not top.get(r.channel):
                    facts.life_starts.setdefault(r.channel, set()).add(seq)
                elif seq != top[r.channel] + 1:
                    facts.gaps.append({"channel": r.channel, "after": top[r.channel], "next": seq,
                                       "record": f"{partition}/{r.offset}"})
                top[r.channel] = max(seq, top.get(r.channel) or 0)
        return facts

    def figures(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "distinct views (channel, seq)": sum(len(v) for v in self.views.values()),
            "views the log holds more than once": len(self.republished),
            "extra records of those views": sum(self.republished.values()),
            "seqs republished with a different view": len(self.conflicts),
            "gaps in a channel's seqs": len(self.gaps),
            "channel changes in": self.changes,
            "of which repeat a change id (redone by the user stage)": self.changes_again,
            "most changes of the channel between a change and its copy": self.furthest_copy,
            "channels whose views differ from one pass over the changes": len(self.unlike_one_pass),
            "views that apply a change again (a redo not dropped)": self.reapplied,
            "views otherwise unlike one pass, or missing": sum(u["other"] + u["missing"] for u in self.unlike_one_pass),
        }


class ChangeRecord(NamedTuple):
    partition: int
    offset: int
    channel: str
    change: Any  # a ChannelChange

    @property
    def change_id(self) -> str:
        return self.change.change_id  # type: ignore[no-any-return]


def _change(record: Any) -> ChangeRecord | None:
    try:
        return ChangeRecord(record.partition, record.offset, record.key.decode(),
                            decode_change(decode(record.value, dict)))
    except (DecodeError, AttributeError):
        return None  # not a change: the processor sets it aside as a dead letter


def one_pass(changes: Iterable[ChangeRecord]) -> dict[str, list[ChannelView]]:
    """The views one pass over `presence.channel-changes` publishes, each change id applied once
    (the channel stage's own core, `streams.channels`): what a processor that never failed over
    would have published."""
    states: dict[str, Any] = {}
    applied: set[str] = set()
    views: dict[str, list[ChannelView]] = {}
    for record in changes:
        change = record.change
        if change.change_id in applied:
            continue
        applied.add(change.change_id)
        state, view = apply_member_change(states.get(change.channel), change)
        if state is None:
            states.pop(change.channel, None)
        else:
            states[change.channel] = state
        if view is not None:
            views.setdefault(change.channel, []).append(view)
    return views


def _step(view: ChannelView) -> bytes:
    """What a view changed, and when: the same for two views that apply the same change (a join
    applied again on a member present is an update; `typing` is the whole list, so it is left out)."""
    members = sorted(to_builtins([*view.joins, *view.updates]), key=lambda m: m["user_id"])
    return orjson.dumps([view.at, members, to_builtins(view.leaves)], option=orjson.OPT_SORT_KEYS)


def brief(view: ChannelView | None) -> str | None:
    """A view in one line: seq, time, what it changed."""
    if view is None:
        return None
    def who(members: tuple[Any, ...]) -> list[str]:
        return [f"{m.user_id}:{m.status}:{m.status_text}:{m.connections}" for m in members]
    return (f"seq={view.seq} at={view.at} joins={who(view.joins)} updates={who(view.updates)} "
            f"leaves={[d.user_id for d in view.leaves]} typing={list(view.typing)} occupancy={len(view.members)}")


def against_one_pass(published: list[ChannelView], ideal: list[ChannelView]) -> dict[str, Any]:
    """Walk a channel's published views (in order of first record) along one pass's: each is either
    the next view of one pass (seq aside), or re-applies the change of an earlier view (`reapplied`,
    with the seqs and change times of the first few), or something else (`other`); `missing` counts
    the views of one pass never published."""
    j, reapplied, other, skipped = 0, [], [], 0
    first: dict[str, Any] = {}
    earlier: set[bytes] = set()

    def same(a: ChannelView, b: ChannelView) -> bool:
        return replace(a, seq=0) == replace(b, seq=0)

    for i, view in enumerate(published):
        if j < len(ideal) and same(view, ideal[j]):
            earlier.add(_step(ideal[j]))
            j += 1
            continue
        ahead = next((k for k in range(j + 1, min(j + 200, len(ideal))) if same(view, ideal[k])), None)
        if ahead is not None:  # one pass has views here that were not published (yet, or ever)
            first = first or {"at published view": i, "published": brief(view), "one pass": brief(ideal[j])}
            skipped += ahead - j
            earlier.update(_step(v) for v in ideal[j:ahead + 1])
            j = ahead + 1
        elif _step(view) in earlier:
            reapplied.append(view)
        else:
            first = first or {"at published view": i, "published": brief(view),
                              "one pass": brief(ideal[j]) if j < len(ideal) else None}
            other.append(view)
    return {"views published": len(published), "views of one pass": len(ideal), "reapplied": len(reapplied),
            "reapplied (seq, at), first and last 3": [(v.seq, v.at) for v in reapplied[:3] + reapplied[-3:]],
            "other": len(other), "other, first 3": [brief(v) for v in other[:3]],
            "one-pass views skipped": skipped, "missing at the end": len(ideal) - j,
            "missing": skipped + len(ideal) - j, "first difference": first}


class ChannelLog:
    """`presence.channels` and `presence.channel-changes`, tailed."""

    def __init__(self, bootstrap: str) -> None:
        self.tail = Tail(bootstrap, CHANNELS.name, _channel_record)
        self.changes = Tail(bootstrap, CHANNEL_CHANGES.name, _change)
        self.bootstrap = bootstrap
        self._group: AIOKafkaConsumer | None = None

    async def facts(self, channels: Iterable[str] | None = None) -> ChannelFacts:
        facts = ChannelFacts.of(await self.tail.read(), channels)
        wanted = None if channels is None else set(channels)
        partitions = await self.changes.read()
        changes = [c for p in sorted(partitions) for c in partitions[p] if wanted is None or c.channel in wanted]
        facts.changes = len(changes)
        facts.changes_again = len(changes) - len({(c.channel, c.change_id) for c in changes})
        index: dict[tuple[str, str], int] = {}  # (channel, change id) -> its first change's place in the channel
        count: Counter[str] = Counter()
        for c in changes:
            place = index.setdefault((c.channel, c.change_id), count[c.channel])
            facts.furthest_copy = max(facts.furthest_copy, count[c.channel] - place)
            count[c.channel] += 1
        # Each channel's views, in the order of their first record, against one pass over the changes.
        facts.changes_of = {}
        for c in changes:
            facts.changes_of.setdefault(c.channel, []).append(c)
        passes = one_pass(changes)
        for channel in sorted(facts.views.keys() | passes.keys()):
            found = against_one_pass(list(facts.views.get(channel, {}).values()), passes.get(channel, []))
            facts.reapplied += found["reapplied"]
            if found["reapplied"] or found["other"] or found["missing"]:
                facts.unlike_one_pass.append({"channel": channel, **found})
        return facts

    async def uncommitted(self, channels: Iterable[str], group_id: str = "presence") -> dict[int, int]:
        """For each partition of `presence.channel-changes` holding `channels`: how many records are
        past the processor group's committed offset now. Those the owner applied already are what a
        new owner redoes if the owner dies now."""
        wanted = set(channels)
        changes = {p: [r for r in records if r.channel in wanted] for p, records in (await self.changes.read()).items()}
        published = Counter(r.channel for records in (await self.tail.read()).values() for r in records
                            if r.channel in wanted and r.view is not None)
        if self._group is None:  # in the group only to read its offsets: it never subscribes
            self._group = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group_id,
                                           enable_auto_commit=False)
            await self._group.start()
        found = {}
        for partition, records in sorted(changes.items()):
            if not records:
                continue
            committed = await self._group.committed(TopicPartition(CHANNEL_CHANGES.name, partition)) or 0
            below = sum(1 for r in records if r.offset < committed)
            views = sum(published[c] for c in {r.channel for r in records})
            per_channel = {c: published[c] - sum(1 for r in records if r.channel == c and r.offset < committed)
                           for c in sorted({r.channel for r in records})}
            found[partition] = {"past the commit": len(records) - below,
                                "applied past the commit (views published - changes below it)": views - below,
                                "the same by channel": per_channel}
        return found

    async def close(self) -> None:
        await self.tail.close()
        await self.changes.close()
        if self._group is not None:
            await self._group.stop()


def _state_of(view: ChannelView) -> dict[str, Any]:
    return {"members": {m.user_id: representation.member(m) for m in view.members}, "typing": list(view.typing)}


@dataclass
class SeenOnce:
    """What one subscriber saw of one channel, against the log."""

    frames: dict[str, int] = field(default_factory=dict)  # frame type -> count
    covered: set[int] = field(default_factory=set)  # the log's seqs its frames delivered, once each
    redelivered: int = 0  # frames whose seq it held already (duplicates by seq)
    redelivered_unlike_log: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, Any]] = field(default_factory=list)  # seqs it never got, with the frame that jumped
    overlaps: list[dict[str, Any]] = field(default_factory=list)  # a frame starting at or below the held seq
    unlike_log: list[dict[str, Any]] = field(default_factory=list)  # a frame or the view after it != the log
    unknown: list[int] = field(default_factory=list)  # seqs the log does not hold
    missing: list[int] = field(default_factory=list)  # the log's seqs after its subscription it never got
    first_seq: int | None = None  # the seq of the snapshot that answered its subscription

    def failures(self) -> dict[str, Any]:
        found = {"gaps": self.gaps, "overlaps": self.overlaps, "frames unlike the log": self.unlike_log,
                 "seqs not in the log": self.unknown, "log seqs never delivered": self.missing,
                 "redelivered frames unlike the log": self.redelivered_unlike_log}
        return {k: v[:5] for k, v in found.items() if v}


def seen_once(frames: list[dict[str, Any]], channel: str, facts: ChannelFacts) -> SeenOnce:
    """Apply a subscriber's frames of `channel` as a client would (docs/api.md, "Keeping a channel
    view"), without resyncing, and hold each against the log: what it saw deduplicated by seq must
    be each view of the log after its subscription, once, in order, each equal to the log's."""
    log = facts.views.get(channel, {})
    seqs = sorted(log)
    starts = facts.life_starts.get(channel, set())
    out = SeenOnce()
    held: int | None = None
    state: dict[str, Any] = {"members": {}, "typing": []}

    def in_log(low: int, high: int) -> list[int]:  # the log's seqs s with low <= s <= high
        return seqs[bisect.bisect_left(seqs, low):bisect.bisect_right(seqs, high)]

    def skipped(low: int, high: int) -> list[int]:  # the log's seqs from low to high not delivered yet
        return [s for s in in_log(low, high) if s not in out.covered]

    for frame in frames:
        if frame.get("channel") != channel:
            continue
        kind = frame["type"]
        out.frames[kind] = out.frames.get(kind, 0) + 1
        if kind == "presence.resumed":
            continue  # the recorders never resume; the diffs that would follow are checked as diffs
        seq = frame["seq"]
        view = log.get(seq)
        if seq != 0 and view is None:
            out.unknown.append(seq)
        if kind == "presence.snapshot":
            if held is None:
                out.first_seq = seq
            elif seq != 0 and seq <= held:
                out.redelivered += 1
            elif seq != 0:
                out.gaps.append({"held": held, "snapshot": seq, "skipped": skipped(held + 1, seq)[:10]})
            held = seq  # a snapshot replaces the view, whatever its seq
            state = {"members": {m["user_id"]: m for m in frame["members"]}, "typing": frame["typing"]}
            want = {"type": kind, **representation.snapshot(
                ChannelView(channel=channel, seq=0, at=0, members=()) if seq == 0 else view or
                ChannelView(channel=channel, seq=seq, at=0, members=()))}
            if frame != want:
                out.unlike_log.append({"frame": frame, "log": want})
            continue
        if held is None:
            continue  # before its subscription's snapshot: not expected
        first = frame.get("from_seq", seq)
        if seq <= held:
            out.redelivered += 1
            if kind == "presence.diff" and view is not None and frame != _diff_frame(view, frame):
                out.redelivered_unlike_log.append({"frame": frame, "log": to_builtins(view)})
            continue
        if first == 1 and held == 0:
            delivered = [seq]  # the first view of a channel's life, a diff on the empty channel
            if seq not in starts:
                out.unlike_log.append({"frame": frame, "log": "not the first view of a life"})
        elif first == held + 1:
            delivered = in_log(first, seq)
        elif first > held + 1:
            out.gaps.append({"held": held, "from_seq": first, "seq": seq, "skipped": skipped(held + 1, first - 1)[:10]})
            delivered = in_log(first, seq)
        else:
            out.overlaps.append({"held": held, "from_seq": first, "seq": seq})
            delivered = in_log(held + 1, seq)
        out.covered.update(delivered)
        members = state["members"]
        for m in frame["joins"] + frame["updates"]:
            members[m["user_id"]] = m
        for d in frame["leaves"]:
            members.pop(d["user_id"], None)
        state["typing"] = frame["typing"]
        held = seq
        if view is None:
            continue
        if kind == "presence.diff" and frame != _diff_frame(view, frame):
            out.unlike_log.append({"frame": frame, "log": to_builtins(view)})
        if kind == "presence.batch" and all(s in log for s in range(first, seq + 1)):
            batch = _Batch(log[first])  # the net effect of the log's views from_seq..seq, as the edge merges
            for s in range(first + 1, seq + 1):
                batch.add(log[s])
            if frame != orjson.loads(batch.frame()):
                out.unlike_log.append({"frame": frame, "log": orjson.loads(batch.frame())})
        if state != _state_of(view) or frame["occupancy"] != len(view.members):
            out.unlike_log.append({"seq": seq, "view after it": state, "log": to_builtins(view)})
    if out.first_seq is not None:
        out.missing = [s for s in seqs if s > out.first_seq and s not in out.covered]
    return out


def _diff_frame(view: ChannelView, frame: dict[str, Any]) -> dict[str, Any]:
    """The diff the edge sends for `view` (with the frame's `from_seq` 1 if it has one: a life's first view)."""
    want = {"type": "presence.diff", **representation.diff(view)}
    if frame.get("from_seq") == 1:
        want["from_seq"] = 1
    return want

"""`presence replay`: rebuild the presence tables from `presence.events` and compare with the live ones.

    presence replay                          fold the whole log, print its state hash and the live tables'
    presence replay --from-snapshot          the same from each partition's newest users snapshot on
    presence replay --policy P.json --out D  re-project the log under another policy into D (users.jsonl,
                                             channels.jsonl, changes.jsonl, summary.json); live tables untouched

The live tables are read from the processor's changelogs (`presence-users-changelog`,
`presence-channels-changelog`). The two hashes are equal when the worker has applied the log the
replay read: on a live system, rerun if they differ while events are still arriving.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiokafka.structs import ConsumerRecord

from schemas.codec import DecodeError, decode, encode, to_builtins
from schemas.events import EventBatch
from schemas.state import ChannelState, EdgeLease, UserPresence
from schemas.topics import CHANNELS_CHANGELOG, EVENTS, USERS_CHANGELOG, partition_for
from services import log_reader
from services.snapshot_reader import newest_users_snapshot
from streams.core import user_view
from streams.replay import Policy, Reprojection, Tables, state_hash

PROGRESS_EVERY_S = 0.5


def add_parser(commands: Any) -> None:
    replay = commands.add_parser("replay", help="rebuild the presence tables from the log; print the state hash")
    replay.add_argument("--policy", type=Path, help="a JSON policy to re-project the log under (needs --out)")
    replay.add_argument("--out", type=Path, help="where a re-projection writes its tables and changes")
    replay.add_argument("--from-snapshot", action="store_true",
                        help="start each partition from its newest users snapshot, not the log's start")
    replay.add_argument("--no-live", action="store_true", help="do not read the live tables to compare")
    replay.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="processes folding partitions side by side (default: one per core)")


def run(args: argparse.Namespace) -> None:
    if (args.policy is None) != (args.out is None):
        sys.exit("--policy and --out go together")
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if args.policy is not None:
        try:
            policy = Policy.from_json(args.policy.read_bytes())
        except (OSError, ValueError) as exc:
            sys.exit(f"{args.policy}: {exc}")
        _reproject(bootstrap, policy, args.out)
        return
    tables, spans = asyncio.run(_from_snapshots(bootstrap) if args.from_snapshot else whole_log(bootstrap))
    tables, summary = replay_in_parallel(bootstrap, tables, spans, args.jobs)
    if args.from_snapshot:
        print(f"snapshots  {', '.join(f'{s.partition}@{s.start}' for s in spans)} (partition@offset)")
    print(f"replayed   {summary['events']:,} events from {summary['records']:,} records in {summary['seconds']:.1f} s "
          f"({summary['events_per_s']:,.0f} events/s)")
    online = sum(1 for u in tables.users.values() if u.online)
    print(f"users      {len(tables.users):,} ({online:,} online)   channels with members {summary['channels']:,}")
    print(f"state hash {summary['hash']}")
    if not args.no_live:
        live = asyncio.run(live_hash(bootstrap))
        print(f"live hash  {live}  ({'equal' if live == summary['hash'] else 'differs'})")


def replay_in_parallel(bootstrap: str, tables: Tables, spans: list[log_reader.Span], jobs: int
                       ) -> tuple[Tables, dict[str, Any]]:
    """`spans` folded from `tables` by `jobs` processes, a partition each at a time (a user's events and
    its partition's leases are all in that partition). Users and leases only (`Tables.announce` False):
    the channels are rebuilt from the users at the end."""
    extent = asyncio.run(log_reader.extent(bootstrap, EVENTS.name))
    total = sum(end - max(first, span.start or 0) for span in spans for first, end in [extent[span.partition]])
    read = multiprocessing.Value("q", 0)
    began = time.monotonic()
    with ProcessPoolExecutor(max(1, jobs), initializer=_share_progress, initargs=(read,)) as pool:
        futures = [pool.submit(_fold_partition, bootstrap, span, *_held_in(tables, span.partition, len(extent)))
                   for span in spans]
        while not all(f.done() for f in futures):
            _progress(read.value / (total or 1), read.value)
            time.sleep(PROGRESS_EVERY_S)
        parts = [f.result() for f in futures]
    seconds = time.monotonic() - began
    _progress(1.0, read.value)
    print(file=sys.stderr)
    folded = Tables(announce=False)
    for users, leases, _ in parts:
        folded.users.update(users)
        folded.leases.update(leases)
    folded.rebuild_channels()
    events = sum(n for _, _, n in parts)
    return folded, {
        "records": read.value, "events": events, "seconds": seconds, "events_per_s": events / seconds if seconds else 0,
        "channels": sum(1 for c in folded.channels.values() if c.members),
        "hash": state_hash(folded.users.values(), folded.channels.values()),
    }


Leases = dict[tuple[str, int], EdgeLease]


def _held_in(tables: Tables, partition: int, partitions: int) -> tuple[dict[str, UserPresence], Leases]:
    return ({user_id: u for user_id, u in tables.users.items() if partition_for(user_id, partitions) == partition},
            {key: lease for key, lease in tables.leases.items() if key[1] == partition})


_read: Any = None  # in a replay process: the records read by all of them (a multiprocessing.Value)


def _share_progress(read: Any) -> None:
    global _read
    _read = read


def _fold_partition(bootstrap: str, span: log_reader.Span, users: dict[str, UserPresence], leases: Leases
                    ) -> tuple[dict[str, UserPresence], Leases, int]:
    """One partition folded in a replay process: its users, its leases, and how many events it held."""
    tables = Tables(users=users, leases=leases, announce=False)
    events = 0

    async def fold() -> None:
        nonlocal events
        async for batch in log_reader.read(bootstrap, EVENTS.name, [span]):
            events += fold_records(batch, tables.fold)
            with _read.get_lock():
                _read.value += len(batch)

    asyncio.run(fold())
    return tables.users, tables.leases, events


async def whole_log(bootstrap: str) -> tuple[Tables, list[log_reader.Span]]:
    return Tables(announce=False), [log_reader.Span(p) for p in sorted(await log_reader.extent(bootstrap, EVENTS.name))]


async def _from_snapshots(bootstrap: str) -> tuple[Tables, list[log_reader.Span]]:
    """Tables from each partition's newest users snapshot, and where each partition's log goes on."""
    now = int(time.time() * 1000)
    partitions = sorted(await log_reader.extent(bootstrap, EVENTS.name))
    snapshots = [await newest_users_snapshot(bootstrap, partition, now) for partition in partitions]
    found = [s for s in snapshots if s is not None]
    tables = Tables.from_snapshot([u for s in found for u in s.users],
                                  [(s.partition, lease) for s in found for lease in s.leases])
    starts = {s.partition: s.position for s in found}
    return tables, [log_reader.Span(p, start=starts.get(p)) for p in partitions]


async def replay(bootstrap: str, tables: Tables | None = None, fold: Any = None) -> tuple[Tables, dict[str, Any]]:
    """Every record of `presence.events` folded into `tables` (by `fold`, its `fold` by default), in one
    process, changes and channels included (a re-projection's output needs them)."""
    tables = tables or Tables()
    fold = fold or tables.fold
    extent = await log_reader.extent(bootstrap, EVENTS.name)
    total = sum(end - first for first, end in extent.values()) or 1
    records = events = 0
    began = shown = time.monotonic()
    async for batch in log_reader.read(bootstrap, EVENTS.name):
        events += fold_records(batch, fold)
        records += len(batch)
        if time.monotonic() - shown > PROGRESS_EVERY_S:
            shown = time.monotonic()
            _progress(records / total, records)
    seconds = time.monotonic() - began
    _progress(1.0, records)
    print(file=sys.stderr)
    channels = sum(1 for c in tables.channels.values() if c.members)
    return tables, {
        "records": records, "events": events, "seconds": seconds,
        "events_per_s": events / seconds if seconds else 0.0, "channels": channels,
        "hash": state_hash(tables.users.values(), tables.channels.values()),
    }


def fold_records(batch: list[ConsumerRecord[bytes, bytes]], fold: Any) -> int:
    """`fold` each record's events; how many there were. A record that does not decode was set aside by
    the processor as a dead letter: it folded nothing, nor does a replay."""
    events = 0
    for record in batch:
        try:
            decoded = decode(record.value, EventBatch)
        except DecodeError:
            continue
        fold(record.partition, record.offset, decoded)
        events += len(decoded.events)
    return events


def _progress(done: float, records: int) -> None:
    width = 30
    bar = "#" * int(done * width)
    print(f"\r[{bar:<{width}}] {done:4.0%}  {records:,} records", end="", file=sys.stderr, flush=True)


async def live_hash(bootstrap: str) -> str:
    users = await _latest(bootstrap, USERS_CHANGELOG, UserPresence)
    channels = await _latest(bootstrap, CHANNELS_CHANGELOG, ChannelState)
    return state_hash(users.values(), channels.values())


async def _latest(bootstrap: str, topic: str, cls: type[Any]) -> dict[str, Any]:
    """A compacted changelog read to its end: the latest value of each key; a tombstone deletes it."""
    latest: dict[str, Any] = {}
    async for batch in log_reader.read(bootstrap, topic):
        for record in batch:
            key = record.key.decode() if record.key is not None else ""
            if record.value is None:
                latest.pop(key, None)
            else:
                latest[key] = decode(record.value, cls)
    return latest


def _reproject(bootstrap: str, policy: Policy, out: Path) -> None:
    reprojection = Reprojection(policy)
    _, summary = asyncio.run(replay(bootstrap, reprojection.tables, reprojection.fold))
    tables = reprojection.finish()
    out.mkdir(parents=True, exist_ok=True)
    shown = [u for u in tables.users.values() if not u.forgotten]
    _jsonl(out / "users.jsonl", [user_view(u) for u in sorted(shown, key=lambda u: u.user_id)])
    _jsonl(out / "channels.jsonl", [{"channel": c.channel, "members": c.members, "typing": c.typing}
                                    for c in sorted(tables.channels.values(), key=lambda c: c.channel) if c.members])
    _jsonl(out / "changes.jsonl", reprojection.changes)
    summary = {**summary, "policy": to_builtins(policy), "changes": len(reprojection.changes),
               "users_online": sum(1 for u in shown if u.online),
               "hash": state_hash(tables.users.values(), tables.channels.values())}
    (out / "summary.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    print(f"re-projected {summary['events']:,} events under {to_builtins(policy)}")
    print(f"users online {summary['users_online']:,}   changes {summary['changes']:,}   state hash {summary['hash']}")
    print(f"wrote        {out}/users.jsonl channels.jsonl changes.jsonl summary.json")


def _jsonl(path: Path, records: list[Any]) -> None:
    with path.open("wb") as file:
        for record in records:
            file.write(encode(record) + b"\n")

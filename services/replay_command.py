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
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from schemas.codec import DecodeError, decode, encode, to_builtins
from schemas.events import EventBatch
from schemas.state import ChannelState, UserPresence
from schemas.topics import CHANNELS_CHANGELOG, EVENTS, USERS_CHANGELOG
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
    tables, spans = asyncio.run(_from_snapshots(bootstrap)) if args.from_snapshot else (None, None)
    tables, summary = asyncio.run(replay(bootstrap, tables, spans=spans))
    if spans is not None:
        print(f"snapshots  {', '.join(f'{s.partition}@{s.start}' for s in spans)} (partition@offset)")
    print(f"replayed   {summary['events']:,} events from {summary['records']:,} records in {summary['seconds']:.1f} s "
          f"({summary['events_per_s']:,.0f} events/s)")
    online = sum(1 for u in tables.users.values() if u.online)
    print(f"users      {len(tables.users):,} ({online:,} online)   channels with members {summary['channels']:,}")
    print(f"state hash {summary['hash']}")
    if not args.no_live:
        live = asyncio.run(live_hash(bootstrap))
        print(f"live hash  {live}  ({'equal' if live == summary['hash'] else 'differs'})")


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


async def replay(bootstrap: str, tables: Tables | None = None, fold: Any = None,
                 spans: list[log_reader.Span] | None = None) -> tuple[Tables, dict[str, Any]]:
    """The records of `presence.events` (all, or those of `spans`) folded into `tables` (by `fold`, its
    `fold` by default)."""
    tables = tables or Tables()
    fold = fold or tables.fold
    extent = await log_reader.extent(bootstrap, EVENTS.name)
    starts = {s.partition: s.start or 0 for s in spans or ()}
    total = sum(end - max(first, starts.get(p, 0)) for p, (first, end) in extent.items()) or 1
    records = events = undecodable = 0
    began = shown = time.monotonic()
    async for batch in log_reader.read(bootstrap, EVENTS.name, spans):
        for record in batch:
            try:
                events_batch = decode(record.value, EventBatch)
            except DecodeError:  # set aside by the processor as a dead letter: it folded nothing
                undecodable += 1
                continue
            fold(record.partition, record.offset, events_batch)
            events += len(events_batch.events)
        records += len(batch)
        if time.monotonic() - shown > PROGRESS_EVERY_S:
            shown = time.monotonic()
            _progress(records / total, events)
    seconds = time.monotonic() - began
    _progress(1.0, events)
    print(file=sys.stderr)
    channels = sum(1 for c in tables.channels.values() if c.members)
    return tables, {
        "records": records, "events": events, "undecodable": undecodable, "seconds": seconds,
        "events_per_s": events / seconds if seconds else 0.0, "channels": channels,
        "hash": state_hash(tables.users.values(), tables.channels.values()),
    }


def _progress(done: float, events: int) -> None:
    width = 30
    bar = "#" * int(done * width)
    print(f"\r[{bar:<{width}}] {done:4.0%}  {events:,} events", end="", file=sys.stderr, flush=True)


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

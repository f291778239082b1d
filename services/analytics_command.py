"""`presence analytics`: users online and channel members over time, peaks, time in each status and
typing, from `presence.changes` (the rules: streams/analytics.py; the tables: docs/analytics.md).

    presence analytics [--from TIME] [--to TIME] [--bucket SECONDS] [--out DIR] [--changes FILE.jsonl]

It reads the whole topic (state entering the window comes from changes before it), or a file of
changes, one JSON record per line as `schemas.codec.encode` writes them. TIME is epoch milliseconds
or ISO 8601 (UTC unless it names an offset). Without --from and --to, the window runs from the first
change read to just after the last. Read from the topic, the changes of erased users (`presence.erasures`)
stamped at or before their erasure are left out; a file is taken as it is (a re-projection's changes
leave out the erasures it folded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schemas.changes import Change
from schemas.codec import DecodeError, decode, decode_change
from schemas.topics import CHANGES
from services import erasures, log_reader
from services.analytics_output import plot, write_csv, write_parquet
from services.instants import instant
from streams.analytics import Analytics, Series, Typing, Window, analyze, without_erased

DEFAULT_BUCKET_S = 300
SUMMARY_CHANNELS = 5  # the busiest channels the summary names


def parse_time(text: str) -> int:
    try:
        return instant(text, "time")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def iso(ms: int) -> str:
    text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    return text.replace(".000+00:00", "Z").replace("+00:00", "Z")


def add_parser(commands: Any) -> None:
    analytics = commands.add_parser("analytics", help="concurrency, peaks, time in status and typing, from the log")
    analytics.add_argument("--from", dest="from_ms", type=parse_time, help="window start (epoch ms or ISO 8601)")
    analytics.add_argument("--to", dest="to_ms", type=parse_time, help="window end, not included")
    analytics.add_argument("--bucket", type=int, default=DEFAULT_BUCKET_S,
                           help=f"seconds per concurrency bucket (default {DEFAULT_BUCKET_S})")
    analytics.add_argument("--out", type=Path, default=Path("analytics"), help="where the CSV, Parquet and PNG go")
    analytics.add_argument("--changes", type=Path,
                           help="a JSON-lines file of changes to read instead of presence.changes")


def run(args: argparse.Namespace) -> None:
    source = str(args.changes) if args.changes else CHANGES.name
    try:
        changes = read_file(args.changes) if args.changes else asyncio.run(read_topic(_bootstrap()))
    except (OSError, DecodeError) as exc:
        sys.exit(f"{source}: {exc}")
    if not changes and (args.from_ms is None or args.to_ms is None):
        sys.exit("no changes read: give --from and --to to measure an empty window")
    from_ms = min(c.at for c in changes) if args.from_ms is None else args.from_ms
    to_ms = max(c.at for c in changes) + 1 if args.to_ms is None else args.to_ms
    try:
        window = Window(from_ms, to_ms, args.bucket * 1000)
    except ValueError as exc:
        sys.exit(str(exc))
    analytics = analyze(changes, window)
    paths = write_csv(analytics, args.out) + write_parquet(analytics, args.out) + plot(analytics, args.out)
    print(summary(analytics, len(changes)))
    for n, path in enumerate(paths):
        print(f"{'wrote' if n == 0 else '':<9} {path}")


def read_file(path: Path) -> list[Change]:
    changes = []
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    changes.append(decode_change(decode(line, dict)))
                except DecodeError as exc:
                    raise DecodeError(f"line {n}: {exc}") from None
    return changes


async def read_topic(bootstrap: str) -> list[Change]:
    """Every change on `presence.changes` less the erased ones; each partition in order, so each user's
    changes are."""
    changes = []
    async for batch in log_reader.read(bootstrap, CHANGES.name):
        for record in batch:
            try:
                changes.append(decode_change(decode(record.value, dict)))
            except DecodeError as exc:
                raise DecodeError(f"partition {record.partition} offset {record.offset}: {exc}") from None
    return without_erased(changes, await erasures.erased(bootstrap))


def summary(analytics: Analytics, read: int) -> str:
    window = analytics.window
    peak = analytics.online.peak
    by_status: dict[str, int] = {}
    for statuses in analytics.status_ms.values():
        for status, ms in statuses.items():
            by_status[status] = by_status.get(status, 0) + ms
    typing = sum(analytics.typing_by_channel().values(), start=Typing())
    lines = [
        f"window    {iso(window.from_ms)} to {iso(window.to_ms)}, {len(window.buckets())} buckets of "
        f"{window.bucket_ms / 1000:g} s; {read} changes read",
        f"online    peak {peak.value} users at {iso(peak.at)}; {_duration(sum(by_status.values()))} online in all, "
        f"{len(analytics.status_ms)} users",
        "statuses  " + ", ".join(f"{status} {_duration(ms)}"
                                 for status, ms in sorted(by_status.items(), key=lambda item: (-item[1], item[0]))),
        f"typing    starts {typing.starts}, time {_duration(typing.ms)}",
        f"channels  {len(analytics.channels)} with members; by peak, at most {SUMMARY_CHANNELS}:",
    ]
    by_channel = analytics.typing_by_channel()
    busiest = sorted(analytics.channels.items(), key=lambda item: (-item[1].peak.value, item[0]))
    for channel, series in busiest[:SUMMARY_CHANNELS]:
        t = by_channel.get(channel, Typing())
        lines.append(f"  {channel}: peak {series.peak.value} at {iso(series.peak.at)}, mean "
                     f"{_mean(series, window):.2f}, typing starts {t.starts}, time {_duration(t.ms)}")
    return "\n".join(lines)


def _mean(series: Series, window: Window) -> float:
    """The time-weighted mean over the whole window."""
    return sum(b.mean * (b.end - b.start) for b in series.buckets) / (window.to_ms - window.from_ms)


def _duration(ms: int) -> str:
    seconds = round(ms / 1000)
    return f"{seconds // 3600}:{seconds // 60 % 60:02}:{seconds % 60:02}"


def _bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")

"""`presence timeline USER_ID [--from T] [--to T] [--json]`: a user's sessions and status intervals, read
from the log of the broker at KAFKA_BOOTSTRAP_SERVERS, as `GET /realtime/users/{user_id}/presence/timeline`
answers them."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from schemas.topics import DEFAULT_PARTITIONS
from services.representation import iso
from services.timeline_reader import LogUnavailable, as_json, user_timeline, window
from streams.timeline import Timeline

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


def add_parser(commands: Any) -> None:  # argparse's _SubParsersAction, which typeshed keeps private
    command = commands.add_parser("timeline", help="a user's sessions and status intervals, from the log")
    command.add_argument("user_id")
    command.add_argument("--from", dest="from_", metavar="T",
                         help="epoch ms or ISO 8601 with a zone (2026-12-07T10:00:00Z); default: a day before --to")
    command.add_argument("--to", metavar="T", help="as --from; default: now")
    command.add_argument("--json", action="store_true", help="print the answer of the REST endpoint instead")


def run(args: argparse.Namespace) -> None:
    try:
        from_ms, to_ms = window(args.from_, args.to, int(time.time() * 1000))
    except ValueError as exc:
        sys.exit(str(exc))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP)
    partitions = int(os.environ.get("PRESENCE_PARTITIONS", DEFAULT_PARTITIONS))
    try:
        timeline = asyncio.run(user_timeline(bootstrap, partitions, args.user_id, from_ms, to_ms))
    except LogUnavailable as exc:
        sys.exit(str(exc))
    if args.json:
        print(orjson.dumps(as_json(timeline)).decode())
    else:
        print(render(timeline))


def render(timeline: Timeline) -> str:
    """The timeline as two plain-text tables; `*` marks rows not wholly inside the window."""
    lines = [f"timeline of {timeline.user_id} from {iso(timeline.from_ms)} to {iso(timeline.to_ms)} "
             f"(presence.events partition {timeline.partition}, offsets below {timeline.offset})", "", "sessions"]
    lines += _table(("start", "end", "end reason", "device", "channel", "connection"), [
        (_at(s.start, s.clipped), _until(s.end), s.end_reason or "", s.device or "-", s.channel or "(connection)",
         s.connection_id)
        for s in timeline.sessions
    ])
    lines += ["", "statuses"]
    lines += _table(("start", "end", "status", "text", "cause"), [
        (_at(i.start, i.clipped), _until(i.end), i.status, " ".join(filter(None, (i.status_emoji, i.status_text))),
         i.cause)
        for i in timeline.statuses
    ])
    if any(s.clipped for s in timeline.sessions) or any(i.clipped for i in timeline.statuses):
        lines += ["", "* not wholly inside the window: true start and end shown"]
    return "\n".join(lines)


def _at(ms: int, clipped: bool) -> str:
    return f"{'*' if clipped else ' '}{iso(ms)}"


def _until(ms: int | None) -> str:
    return "ongoing" if ms is None else iso(ms) or ""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return ["  (none)"]
    widths = [max(len(str(row[n])) for row in (header, *rows)) for n in range(len(header))]
    return ["  " + "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)]

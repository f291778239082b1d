"""`presence at CHANNEL TIME`: a channel's members at a past instant, read from the log of the broker at
KAFKA_BOOTSTRAP_SERVERS, as `GET /realtime/channels/{channel}/presence?at=TIME` answers them."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import orjson

from schemas.topics import DEFAULT_PARTITIONS
from services import representation
from services.history import channel_at
from services.instants import instant


def add_parser(commands: Any) -> None:  # argparse's _SubParsersAction, which typeshed keeps private
    command = commands.add_parser("at", help="a channel's members at a past instant, from the log")
    command.add_argument("channel")
    command.add_argument("time", help="epoch ms or ISO 8601 with a zone (2026-12-07T10:00:00Z)")


def run(args: argparse.Namespace) -> None:
    try:
        when = instant(args.time, "time")
    except ValueError as exc:
        sys.exit(str(exc))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    partitions = int(os.environ.get("PRESENCE_PARTITIONS", DEFAULT_PARTITIONS))
    past = asyncio.run(channel_at(bootstrap, partitions, args.channel, when))
    body = representation.channel_at(past)
    body["members"] = [representation.member(m) for m in (past.state.members if past.state is not None else ())]
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())

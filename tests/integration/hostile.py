"""Hostile WebSocket input for the fuzz test, and what the documented protocol says each frame must get.

`Hostile` draws seeded cases: malformed, truncated, binary, oversize and deeply nested frames, huge
numbers, wrong types, unknown fields and frame types, forged ids, other users' channels, unknown
statuses, metadata over its limits, mutated valid frames (seeded here, and drawn by hypothesis in
`drawn_frames`), bursts of joins and leaves, typing floods, fragmented and non-UTF-8 messages.

`Oracle` is the protocol as docs/api.md and docs/errors.md state it, written apart from
services/protocol.py: given a connection's state it tells what a frame must get (an error with a
code from a set, because the docs do not order the checks; a snapshot or an ack echoing `ref`;
nothing; or a close code), which events it writes, and how it changes the state. JSON itself is
what orjson accepts (JSON text, nesting up to 1024, numbers finite as doubles), as on the edge.
Null is refused in an update's fields; a null `since`, `timeout_s` of typing.start or `ref` counts
as left out, as the edge has it (the docs say nothing of null).

Strings with the `never` marker (forged ids, refs) go only where the log must not hold them:
unknown fields, which fail, and `ref`, which is only echoed.
"""

from __future__ import annotations

import fnmatch
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

# The documented limits (docs/api.md, the stack runs with the defaults).
MAX_FRAME_BYTES = 16384
SERVER_MAX_BYTES = 4 * MAX_FRAME_BYTES  # uvicorn closes with 1009 above this
MAX_METADATA_BYTES = 4096
MAX_METADATA_KEYS = 64
MAX_METADATA_DEPTH = 4
MAX_STATUS_TEXT = 100
MAX_STATUS_EMOJI = 16
MAX_EXPIRY_S = 604800
MIN_TYPING_TIMEOUT_S = 0.5
CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
BUILT_IN_STATES = {"online": True, "away": True, "busy": True, "dnd": True, "invisible": False, "offline": False}

# Frame type -> (required fields, optional fields); `type` and `ref` go with every frame.
FRAMES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "join": (frozenset({"channel"}), frozenset({"since"})),
    "subscribe": (frozenset({"channel"}), frozenset({"since"})),
    "leave": (frozenset({"channel"}), frozenset()),
    "unsubscribe": (frozenset({"channel"}), frozenset()),
    "typing.start": (frozenset({"channel"}), frozenset({"timeout_s"})),
    "typing.stop": (frozenset({"channel"}), frozenset()),
    "heartbeat": (frozenset(), frozenset()),
    "update": (frozenset(), frozenset({"status", "status_metadata", "status_text", "status_emoji", "expires_in_s",
                                       "metadata", "timeout_s"})),
}
FORGED_KEYS = ["user_id", "connection_id", "event_id", "edge_id", "at", "sub", "v"]


@dataclass(frozen=True)
class Fragments:
    """One text message sent as several WebSocket frames."""

    parts: tuple[str, ...]


@dataclass(frozen=True)
class RawText:
    """A text frame whose payload is sent as is, valid UTF-8 or not."""

    payload: bytes


Item = str | bytes | Fragments | RawText


@dataclass
class Case:
    kind: str
    items: list[Item]


@dataclass(frozen=True)
class Expect:
    """What one frame must get. An error when `codes` is set, else `answer` ("snapshot", "ack") or nothing."""

    codes: frozenset[str] = frozenset()
    answer: str = ""
    channel: str | None = None
    ref: Any = None
    close: int | None = None
    writes: tuple[tuple[str, Any], ...] = ()  # ("channel.joined", channel), ("presence.updated", fields), ...
    op: tuple[str, str] | None = None  # the change to the connection's state

    @property
    def error(self) -> bool:
        return bool(self.codes)


@dataclass
class Conn:
    """What the edge holds for one connection, as far as its answers depend on it."""

    allowed: tuple[str, ...] | None  # the token's `channels` claim
    joined: set[str] = field(default_factory=set)
    observing: set[str] = field(default_factory=set)
    typing: set[str] = field(default_factory=set)  # channels where a typing.started was written and not stopped

    def copy(self) -> Conn:
        return replace(self, joined=set(self.joined), observing=set(self.observing), typing=set(self.typing))

    def apply(self, op: tuple[str, str] | None) -> None:
        if op is None:
            return
        verb, channel = op
        if verb == "join":
            self.joined.add(channel)
        elif verb == "leave":
            self.joined.discard(channel)
            self.typing.discard(channel)
        elif verb == "observe":
            self.observing.add(channel)
        elif verb == "unobserve":
            self.observing.discard(channel)
        elif verb == "type":
            self.typing.add(channel)
        elif verb == "untype":
            self.typing.discard(channel)


def error(*codes: str) -> Expect:
    return Expect(codes=frozenset(codes))


class Oracle:
    def __init__(self, policy_file: Path, max_channels: int) -> None:
        policy = json.loads(policy_file.read_text())
        self.visible = dict(BUILT_IN_STATES) | {s["name"]: s.get("counts_as_online", True) for s in policy["states"]}
        self.schemas = {s["name"]: s.get("metadata_schema") for s in policy["states"]}
        self.timeout_bounds = tuple(policy.get("user_timeout_bounds_s", (5, 300)))
        self.max_channels = max_channels

    def expect(self, item: Item, conn: Conn) -> Expect:
        if isinstance(item, RawText):
            if len(item.payload) > SERVER_MAX_BYTES:
                return Expect(close=1009)
            try:
                text = item.payload.decode()
            except UnicodeDecodeError:
                return Expect(close=1007)  # invalid frame payload data
            return self.expect(text, conn)
        if isinstance(item, bytes):
            return Expect(close=1009) if len(item) > SERVER_MAX_BYTES else error("request.binary_frame")
        text = "".join(item.parts) if isinstance(item, Fragments) else item
        size = len(text.encode())
        if size > SERVER_MAX_BYTES:
            return Expect(close=1009)
        if size > MAX_FRAME_BYTES:
            return error("request.too_large")
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            return error("request.malformed_json")
        if not isinstance(body, dict):
            return error("request.invalid")
        problems: set[str] = set()
        ref = body.get("ref")
        if ref is not None and not _is_int(ref) and not isinstance(ref, str):
            problems.add("request.invalid")
        kind = body.get("type")
        if not isinstance(kind, str):
            return error(*problems, "request.invalid")
        if kind not in FRAMES:
            return error(*problems, "request.unknown_type")
        fields = {k: v for k, v in body.items() if k not in ("type", "ref")}
        required, optional = FRAMES[kind]
        if fields.keys() - required - optional or required - fields.keys():
            problems.add("request.invalid")
        problems |= self._value_problems(kind, fields)
        if problems:
            return error(*problems)
        return self._outcome(kind, fields, ref, conn)

    def _value_problems(self, kind: str, fields: dict[str, Any]) -> set[str]:
        problems = set()
        if "channel" in fields and not _channel_id(fields["channel"]):
            problems.add("channel.invalid_id")
        since = fields.get("since")
        if since is not None and not (_is_int(since) and since >= 0):
            problems.add("request.invalid")
        if kind == "typing.start":
            timeout_s = fields.get("timeout_s")
            if timeout_s is not None and not (_is_number(timeout_s) and timeout_s >= MIN_TYPING_TIMEOUT_S):
                problems.add("request.invalid")
        if kind == "update":
            problems |= self._update_problems(fields)
        return problems

    def _update_problems(self, fields: dict[str, Any]) -> set[str]:
        problems = set()
        if not fields or None in fields.values():  # null is no value of an update field: leave the field out
            problems.add("request.invalid")
        status, status_metadata = fields.get("status"), fields.get("status_metadata")
        if status is not None and not isinstance(status, str):
            problems.add("request.invalid")
        if isinstance(status, str) and status not in self.visible:
            problems.add("presence.unknown_status")
        if status_metadata is not None:
            problems |= metadata_problems(status_metadata)
            if status is None:
                problems.add("request.invalid")
        if isinstance(status, str) and status in self.visible and not metadata_problems(status_metadata or {}):
            schema = self.schemas.get(status)
            if schema is None and status_metadata:
                problems.add("presence.invalid_status_metadata")
            if schema is not None and not jsonschema.Draft202012Validator(schema).is_valid(status_metadata or {}):
                problems.add("presence.invalid_status_metadata")
        if fields.get("metadata") is not None:
            problems |= metadata_problems(fields["metadata"])
        for name, limit in (("status_text", MAX_STATUS_TEXT), ("status_emoji", MAX_STATUS_EMOJI)):
            value = fields.get(name)
            if value is not None and not (isinstance(value, str) and len(value) <= limit):
                problems.add("request.invalid")
        expires = fields.get("expires_in_s")
        if expires is not None and not (_is_number(expires) and 1 <= expires <= MAX_EXPIRY_S):
            problems.add("request.invalid")
        timeout_s = fields.get("timeout_s")
        if timeout_s is not None:
            if not (_is_number(timeout_s) and timeout_s >= 0):
                problems.add("request.invalid")
            elif not self.timeout_bounds[0] <= timeout_s <= self.timeout_bounds[1]:
                problems.add("presence.timeout_out_of_bounds")
        return problems

    def _outcome(self, kind: str, fields: dict[str, Any], ref: Any, conn: Conn) -> Expect:
        channel = fields.get("channel")
        allowed = conn.allowed is None or any(fnmatch.fnmatchcase(channel or "", p) for p in conn.allowed)
        full = len(conn.joined | conn.observing) >= self.max_channels
        if kind in ("join", "subscribe"):
            held = conn.joined if kind == "join" else conn.observing
            if not allowed:
                return error("auth.channel_forbidden")
            if channel not in held and full:
                return error("limit.channels_per_connection")
            writes = (("channel.joined", channel),) if kind == "join" and channel not in held else ()
            return Expect(answer="snapshot", channel=channel, ref=ref, writes=writes,
                          op=("join" if kind == "join" else "observe", channel))
        if kind == "leave":
            if channel not in conn.joined:
                return error("channel.not_joined")
            return Expect(answer="ack", channel=channel, ref=ref, writes=(("channel.left", channel),),
                          op=("leave", channel))
        if kind == "unsubscribe":
            if channel not in conn.observing:
                return error("channel.not_subscribed")
            return Expect(answer="ack", channel=channel, ref=ref, op=("unobserve", channel))
        if kind == "typing.start":
            if channel not in conn.joined:
                return error("channel.not_joined")
            started = channel not in conn.typing  # later ones within the episode are throttled renewals
            return Expect(writes=(("typing.started", channel),) if started else (), op=("type", channel))
        if kind == "typing.stop":
            stopped = channel in conn.typing
            return Expect(writes=(("typing.stopped", channel),) if stopped else (), op=("untype", channel))
        if kind == "update":
            written = {k: fields.get(k) for k in ("status", "status_text", "status_emoji", "metadata",
                                                   "status_metadata")}
            written["visible"] = self.visible.get(fields.get("status") or "online", True)
            return Expect(answer="ack", ref=ref, writes=(("presence.updated", written),))
        return Expect()  # heartbeat


def metadata_problems(value: Any) -> set[str]:
    if not isinstance(value, dict):
        return {"request.invalid"}
    problems = set()
    if encoded_len(value) > MAX_METADATA_BYTES:
        problems.add("request.too_large")
    if len(value) > MAX_METADATA_KEYS or depth(value) > MAX_METADATA_DEPTH:
        problems.add("request.invalid")
    return problems


def encoded_len(value: Any) -> int:
    """Bytes of the compact JSON encoding, without recursion (values may nest 1000 deep)."""
    total, stack = 0, [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            total += 2 + max(len(v) - 1, 0) + sum(len(orjson.dumps(k)) + 1 for k in v)
            stack.extend(v.values())
        elif isinstance(v, list):
            total += 2 + max(len(v) - 1, 0)
            stack.extend(v)
        else:
            total += len(orjson.dumps(v))
    return total


def depth(value: Any) -> int:
    """Levels of objects and arrays: `{"a": {"b": 1}}` is 2."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (v.values() if isinstance(v, dict) else v))
    return deepest


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _channel_id(value: Any) -> bool:
    return isinstance(value, str) and CHANNEL_ID.fullmatch(value) is not None


# Generation.

VALUE_ZOO: list[Any] = [
    None, True, False, 0, -1, 1, 0.5, 1.5, -0.0, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 1e308, 5e-324,
    "", " ", "x", "online", "0", "true", "null", "\u0000", "\u202e", "🙂", "x" * 200, "a/b", [], [1], [None], {},
    {"a": 1}, {"type": "join"}, [[[[[]]]]], {"a": {"b": {"c": {"d": {"e": 1}}}}},
]
NUMBER_LITERALS = [
    "1e400", "-1e400", "NaN", "-NaN", "Infinity", "-Infinity", "1" + "0" * 30, "1" + "0" * 400, "18446744073709551615",
    "18446744073709551616", "-9223372036854775808", "-9223372036854775809", "1e308", "5e-324", "1e-400", "-0",
    "-0.0", "0.49999999999999999", "604800.0000001", "1E2", "0x10", "01", "+1", ".5", "1.", "1e", "--1", "2e-1",
]
MALFORMED = [
    "", " ", "{", "}", "{{}", "[1,2", '{"type":"join",}', "{'type':'heartbeat'}", '{"type":"join" "channel":"x"}',
    '{"type":"heartbeat"}garbage', '{"type":"heartbeat"}{"type":"heartbeat"}', '\ufeff{"type":"heartbeat"}',
    '/* c */{"type":"heartbeat"}', "undefined", '{"type":"heartbeat","ref":"\\x41"}', '{"ref":"\\ud800"}',
    '{"type":"heartbeat","ref":"\\u12"}', "\u0000", '{"type":\u0000"heartbeat"}', "{\"type\":\"join\",\"channel\":",
    '{"type":"heartbeat",,}', '{"type":heartbeat}', "nul", "tru", '{"a":1}}',
]
UNKNOWN_TYPES: list[Any] = [
    "", "JOIN", "Join", "join ", " join", "joins", "typing", "typing.started", "typing_start", "presence.snapshot",
    "presence.diff", "welcome", "ack", "error", "ping", "close", "leave\u0000", "🙂", "x" * 1000, "update.",
    "__proto__", 1, None, True, [], {}, ["join"],
]
BAD_CHANNEL_IDS: list[Any] = [
    "", "-x", ".x", "a/b", "a b", " lobby", "lobby\n", "x" * 129, "été", "fz-atk-*", "fz-atk-?", "fz-atk-[a]",
    "..", "a\u0000b", 7, None, True, ["lobby"], {"id": "lobby"}, 1.5,
]
BAD_STATUSES: list[Any] = [
    "sleeping", "ONLINE", "Online", "online ", "", "in-a-meeting ", "in_a_meeting", "__proto__", "constructor",
    "toString", "null", "offline\u0000", "x" * 200, "🙂", 1, True, [], {},
]
TEXT_CHARS = "abcXYZ019 _-.:@éß漢字🙂\u202e\u200b\u0000\n\"\\'<>{}[]"


class Hostile:
    """Seeded hostile cases for one attacker connection."""

    KINDS = {  # kind -> weight
        "malformed": 5, "truncated": 5, "binary": 4, "oversize": 3, "deep": 5, "numbers": 5, "wrong_type": 8,
        "unknown_field": 5, "unknown_type": 4, "forged": 6, "foreign_channel": 5, "bad_channel_id": 4, "status": 5,
        "metadata": 6, "mutated": 10, "drawn": 10, "own": 6, "join_leave_burst": 1, "typing_flood": 1,
        "fragmented": 3, "too_big": 2, "bad_utf8": 2,
    }

    def __init__(self, rng: random.Random, own: list[str], foreign: list[str], victim: tuple[str, str], never: str,
                 drawn: list[str], statuses: list[str]) -> None:
        self.rng = rng
        self.own = own  # channels this attacker's token allows
        self.foreign = foreign  # other users' channels: the token does not allow them
        self.victim_user, self.victim_connection = victim
        self.never = never
        self.drawn = drawn
        self.statuses = statuses

    def case(self, kinds: dict[str, int] | None = None) -> Case:
        kinds = kinds or self.KINDS
        kind = self.rng.choices(list(kinds), weights=list(kinds.values()))[0]
        generate: Callable[[], list[Item]] = getattr(self, f"_{kind}")
        return Case(kind, generate())

    # Building blocks.

    def _text(self, max_chars: int) -> str:
        return "".join(self.rng.choice(TEXT_CHARS) for _ in range(self.rng.randint(0, max_chars)))

    def _random_metadata(self, keys: int = 4, levels: int = 3) -> dict[str, Any]:
        r = self.rng

        def value(level: int) -> Any:
            roll = r.random()
            if level < levels and roll < 0.2:
                return {self._text(6): value(level + 1) for _ in range(r.randint(0, 3))}
            if level < levels and roll < 0.35:
                return [value(level + 1) for _ in range(r.randint(0, 3))]
            return r.choice([None, True, r.randint(-(2**63), 2**64 - 1), r.uniform(-1e9, 1e9), self._text(12)])

        return {self._text(8): value(2) for _ in range(r.randint(0, keys))}

    def _valid_update(self) -> dict[str, Any]:
        r = self.rng
        update: dict[str, Any] = {}
        while not update:
            if r.random() < 0.5:
                update["status"] = r.choice(self.statuses)
                if update["status"] == "in-a-meeting":
                    update["status_metadata"] = {"room": self._text(8)}
            if r.random() < 0.4:
                update["status_text"] = self._text(MAX_STATUS_TEXT)
            if r.random() < 0.2:
                update["status_emoji"] = r.choice(["", "🙂", "📞", "x" * 16])
            if r.random() < 0.2:
                update["expires_in_s"] = r.choice([1, 2.5, 3600, MAX_EXPIRY_S])
            if r.random() < 0.3:
                update["metadata"] = self._random_metadata()
            if r.random() < 0.1:
                update["timeout_s"] = r.choice([5, 30, 60])
        return update

    def valid(self, channel: str | None = None) -> dict[str, Any]:
        r = self.rng
        kind = r.choice(list(FRAMES))
        frame: dict[str, Any] = {"type": kind}
        if FRAMES[kind][0]:
            frame["channel"] = channel or r.choice(self.own)
        if kind in ("join", "subscribe") and r.random() < 0.3:
            frame["since"] = r.choice([0, 1, 2, 5, 10**6])
        if kind == "typing.start" and r.random() < 0.5:
            frame["timeout_s"] = r.choice([0.5, 1, 2.5, 30, 1e6])
        if kind == "update":
            frame |= self._valid_update()
        if r.random() < 0.7:
            frame["ref"] = r.choice([r.randrange(10**6), f"r{r.randrange(1000)}", -5, 2**64 - 1, ""])
        return frame

    def _dump(self, frame: Any) -> str:
        return orjson.dumps(frame).decode()

    def _forged_id(self, key: str) -> str:
        return f"{self.never}-{key}-{self.rng.getrandbits(32):08x}"

    # Kinds.

    def _malformed(self) -> list[Item]:
        r = self.rng
        if r.random() < 0.6:
            return [r.choice(MALFORMED)]
        return ["".join(r.choice('{}[]":,\\ ntrufals0123456789.eE+-') for _ in range(r.randint(1, 60)))]

    def _truncated(self) -> list[Item]:
        text = self._dump(self.valid())
        return [text[: self.rng.randrange(len(text))]]

    def _binary(self) -> list[Item]:
        r = self.rng
        choice = r.random()
        if choice < 0.4:
            return [self._dump(self.valid()).encode()]
        if choice < 0.5:
            return [b""]
        return [bytes(r.getrandbits(8) for _ in range(r.randint(1, 2000)))]

    def _oversize(self) -> list[Item]:
        r = self.rng
        size = r.randint(MAX_FRAME_BYTES + 1, SERVER_MAX_BYTES - 100)
        style = r.choice(["pad", "spaces", "multibyte_ref", "metadata"])
        if style == "pad":
            return ['{"type":"heartbeat","pad":"' + "x" * size + '"}']
        if style == "spaces":  # valid JSON, too big
            return ['{"type":"heartbeat"' + " " * size + "}"]
        if style == "multibyte_ref":  # fewer characters than the limit, more bytes
            chars = r.randint(MAX_FRAME_BYTES // 2 + 10, MAX_FRAME_BYTES - 40)
            return ['{"type":"heartbeat","ref":"' + "é" * chars + '"}']
        return [self._dump({"type": "update", "metadata": {"blob": "y" * size}})]

    def _too_big(self) -> list[Item]:
        r = self.rng
        size = r.randint(SERVER_MAX_BYTES + 1, SERVER_MAX_BYTES + 40000)
        style = r.choice(["text", "binary", "fragments"])
        if style == "text":
            return ['{"type":"heartbeat","pad":"' + "x" * size + '"}']
        if style == "binary":
            return [b"\x00" * size]
        third = size // 3 + 1
        return [Fragments(('{"type":"heartbeat","pad":"', "x" * third, "x" * third, "x" * third + '"}'))]

    def _bad_utf8(self) -> list[Item]:
        payload = self.rng.choice([
            b'{"type":"heartbeat","ref":"\xc3\x28"}', b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf", b'{"type":"join"\x80}',
        ])
        return [RawText(payload)]

    def _deep(self) -> list[Item]:
        r = self.rng
        levels = r.choice([5, 64, 254, 255, 256, 300, 500, 1000, 1022, 1023, 1024, 1025, 4000])
        inner = "[" * levels + "]" * levels if r.random() < 0.7 else '{"a":' * levels + "1" + "}" * levels
        where = r.choice(["root", "metadata", "status_metadata", "ref", "unknown", "since", "channel", "status"])
        own = self.rng.choice(self.own)
        frames = {
            "root": inner,
            "metadata": '{"type":"update","metadata":{"x":' + inner + "}}",
            "status_metadata": '{"type":"update","status":"in-a-meeting","status_metadata":{"room":' + inner + "}}",
            "ref": '{"type":"heartbeat","ref":' + inner + "}",
            "unknown": '{"type":"heartbeat","deep":' + inner + "}",
            "since": '{"type":"join","channel":"' + own + '","since":' + inner + "}",
            "channel": '{"type":"join","channel":' + inner + "}",
            "status": '{"type":"update","status":' + inner + "}",
        }
        return [frames[where]]

    def _numbers(self) -> list[Item]:
        r = self.rng
        n = r.choice(NUMBER_LITERALS)
        own = r.choice(self.own)
        frames = [
            '{"type":"join","channel":"' + own + '","since":' + n + "}",
            '{"type":"subscribe","channel":"' + own + '","since":' + n + "}",
            '{"type":"typing.start","channel":"' + own + '","timeout_s":' + n + "}",
            '{"type":"update","timeout_s":' + n + "}",
            '{"type":"update","status":"busy","expires_in_s":' + n + "}",
            '{"type":"heartbeat","ref":' + n + "}",
            '{"type":"update","metadata":{"n":' + n + "}}",
            '{"type":"update","status":"in-a-meeting","status_metadata":{"room":' + n + "}}",
            '{"type":"update","status_text":' + n + "}",
            '{"type":"join","channel":' + n + "}",
        ]
        return [r.choice(frames)]

    def _wrong_type(self) -> list[Item]:
        r = self.rng
        frame = self.valid()
        names = [*FRAMES[frame["type"]][0], *FRAMES[frame["type"]][1], "ref", "type"]
        frame[r.choice(names)] = r.choice(VALUE_ZOO)
        return [self._dump(frame)]

    def _unknown_field(self) -> list[Item]:
        r = self.rng
        frame = self.valid()
        name = r.choice(["seq", "members", "__proto__", "constructor", "", "Type", "channel ", "CHANNEL", "refs",
                         "status", "channel", "since", "metadata", "device", "token"])
        if name not in FRAMES[frame["type"]][0] | FRAMES[frame["type"]][1]:
            frame[name] = r.choice(VALUE_ZOO)
        else:
            frame["extra"] = r.choice(VALUE_ZOO)
        return [self._dump(frame)]

    def _unknown_type(self) -> list[Item]:
        frame = self.valid()
        frame["type"] = self.rng.choice(UNKNOWN_TYPES)
        return [self._dump(frame)]

    def _forged(self) -> list[Item]:
        r = self.rng
        frame = self.valid()
        if r.random() < 0.2:  # a forged id as `ref` is only echoed back: the frame stays valid
            frame["ref"] = self._forged_id("ref")
            return [self._dump(frame)]
        for key in r.sample(FORGED_KEYS, r.randint(1, 3)):
            frame[key] = r.choice([self._forged_id(key), self.victim_user, self.victim_connection, None, 0])
        return [self._dump(frame)]

    def _foreign_channel(self) -> list[Item]:
        r = self.rng
        kind = r.choice(["join", "subscribe", "leave", "unsubscribe", "typing.start", "typing.stop"])
        frame = {"type": kind, "channel": r.choice(self.foreign), "ref": r.randrange(100)}
        return [self._dump(frame)]

    def _bad_channel_id(self) -> list[Item]:
        r = self.rng
        kind = r.choice(["join", "subscribe", "leave", "unsubscribe", "typing.start", "typing.stop"])
        return [self._dump({"type": kind, "channel": r.choice(BAD_CHANNEL_IDS)})]

    def _status(self) -> list[Item]:
        r = self.rng
        frame: dict[str, Any] = {"type": "update", "ref": "s"}
        roll = r.random()
        if roll < 0.5:
            frame["status"] = r.choice(BAD_STATUSES)
        elif roll < 0.8:
            frame["status"] = "in-a-meeting"
            choice = r.choice([None, {}, {"room": "r1"}, {"room": 1}, {"room": "r", "x": 1}, [], "r1"])
            if choice is not None:
                frame["status_metadata"] = choice
        else:
            frame["status"] = r.choice(["online", "busy", "invisible"])
            frame["status_metadata"] = r.choice([{}, {"a": 1}, {"room": "r1"}])
        if r.random() < 0.2:
            del frame["status"]
        return [self._dump(frame)]

    def _metadata_case(self) -> Any:
        r = self.rng
        choice = r.choice(["bytes", "keys", "depth", "type"])
        if choice == "bytes":
            target = r.choice([MAX_METADATA_BYTES - 1, MAX_METADATA_BYTES, MAX_METADATA_BYTES + 1, 10000])
            return {"blob": "b" * (target - len('{"blob":""}'))}
        if choice == "keys":
            return {f"k{i}": i for i in range(r.choice([63, 64, 65, 500]))}
        if choice == "depth":
            value: Any = 1
            for _ in range(r.choice([3, 4, 5, 10]) - 1):
                value = {"d": value} if r.random() < 0.5 else [value]
            return {"top": value}
        return r.choice([[], "meta", 1, True, [{"a": 1}]])

    def _metadata(self) -> list[Item]:
        key = self.rng.choice(["metadata", "metadata", "status_metadata"])
        frame: dict[str, Any] = {"type": "update", key: self._metadata_case()}
        if key == "status_metadata":
            frame["status"] = self.rng.choice(["online", "in-a-meeting"])
        return [self._dump(frame)]

    def _mutated(self) -> list[Item]:
        r = self.rng
        frame: Any = self.valid()
        if r.random() < 0.5:
            frame.pop("ref", None)
        for _ in range(r.randint(1, 3)):
            op = r.choice(["drop", "add", "set", "retype", "type_case", "channel", "wrap", "nest"])
            if not isinstance(frame, dict):
                break
            keys = list(frame)
            if op == "drop" and keys:
                del frame[r.choice(keys)]
            elif op == "add":
                frame[r.choice(["channel", "since", "status", "metadata", "timeout_s", "status_text", "x"])] = (
                    r.choice(VALUE_ZOO))
            elif op == "set" and keys:
                frame[r.choice(keys)] = r.choice(VALUE_ZOO)
            elif op == "retype":
                frame["type"] = r.choice(list(FRAMES))
            elif op == "type_case" and isinstance(frame.get("type"), str):
                frame["type"] = frame["type"].upper()
            elif op == "channel":
                frame["channel"] = r.choice([*self.foreign, *BAD_CHANNEL_IDS, *self.own])
            elif op == "wrap":
                frame = [frame]
            elif op == "nest":
                frame = {"type": "update", "frame": frame}
        text = self._dump(frame)
        for _ in range(r.choice([0, 0, 1, 2])):  # byte-level edits
            i = r.randrange(len(text) + 1)
            edit = r.choice(["flip", "delete", "insert", "dup_key"])
            if edit == "flip" and i < len(text):
                text = text[:i] + r.choice('{}[]",:\\ x0é') + text[i + 1:]
            elif edit == "delete":
                text = text[:i] + text[i + 1:]
            elif edit == "insert":
                text = text[:i] + r.choice(['"', "{", "}", ",", " ", "\\", "\u0000", "é", "1", ":"]) + text[i:]
            elif edit == "dup_key" and text.startswith("{") and len(text) > 2:
                text = '{"type":"' + r.choice(list(FRAMES)) + '",' + text[1:]
        return [text]

    def _drawn(self) -> list[Item]:
        if not self.drawn:
            return self._mutated()
        return [self.drawn.pop()]

    def _own(self) -> list[Item]:
        return [self._dump(self.valid())]

    def _join_leave_burst(self) -> list[Item]:
        r = self.rng
        items: list[Item] = []
        channels = r.sample(self.own, r.randint(1, 4))
        for i in range(r.randint(4, 12)):
            channel = r.choice(channels)
            items.append(self._dump({"type": "join", "channel": channel, "ref": f"j{i}"}))
            if r.random() < 0.8:
                items.append(self._dump({"type": "leave", "channel": channel, "ref": f"l{i}"}))
        return items[:28]

    def _typing_flood(self) -> list[Item]:
        r = self.rng
        channel = r.choice(self.own)
        items: list[Item] = [self._dump({"type": "join", "channel": channel, "ref": "tj"})]
        items += [self._dump({"type": "typing.start", "channel": channel}) for _ in range(r.randint(10, 24))]
        if r.random() < 0.5:
            items.append(self._dump({"type": "typing.stop", "channel": channel}))
        return items

    def _fragmented(self) -> list[Item]:
        r = self.rng
        text = self._dump(self.valid()) if r.random() < 0.7 else r.choice(MALFORMED) + "xx"
        cuts = sorted(r.sample(range(1, len(text)), min(len(text) - 1, r.randint(1, 5))))
        return [Fragments(tuple(text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)))]



def drawn_frames(count: int, seed: int, own: list[str], foreign: list[str], never: str,
                 statuses: list[str]) -> list[str]:
    """`count` frames drawn by hypothesis (seeded): known and unknown types and fields, any JSON values."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=12,
    )
    number = st.integers(-5, 10**6) | st.floats(-10, 1e6, allow_nan=False) | values
    fields = {
        "channel": st.sampled_from(own + foreign + BAD_CHANNEL_IDS[:10]) | st.text(max_size=10) | values,
        "since": st.integers(-2, 2**64 - 1) | values,
        "ref": st.text(max_size=6).map(lambda s: f"{never}-ref-{s}") | st.integers(-(2**63), 2**64 - 1) | values,
        "status": st.sampled_from(statuses + BAD_STATUSES[:6]) | st.text(max_size=12) | values,
        "status_text": st.text(max_size=110) | values,
        "status_emoji": st.text(max_size=20) | values,
        "expires_in_s": number,
        "timeout_s": number,
        "metadata": st.dictionaries(st.text(max_size=8), values, max_size=70) | values,
        "status_metadata": st.fixed_dictionaries({"room": st.text(max_size=5)}) | values,
    }
    frame = st.builds(
        lambda kind, known, forged: {"type": kind, **known, **forged},
        st.sampled_from(list(FRAMES)) | st.sampled_from(UNKNOWN_TYPES) | st.text(max_size=12),
        st.fixed_dictionaries({}, optional=fields),
        st.dictionaries(st.sampled_from(FORGED_KEYS), st.text(max_size=8).map(lambda s: f"{never}-{s}"), max_size=2),
    )
    drawn: list[str] = []

    @hypothesis_seed(seed)
    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(frame)
    def collect(value: dict[str, Any]) -> None:
        drawn.append(orjson.dumps(value).decode())

    collect()
    return drawn

"""Client input: the WebSocket frames and REST bodies a client may send, strictly validated.

Parsing turns raw text into one of the command dataclasses below or raises `ApiError` with a
stable code; nothing reaches the log before it has passed here. Policy checks that need the
configuration (is this status known, does its metadata fit) happen here too, via `Limits.policy`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from services.errors import ApiError
from services.policy import Policy

CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
DEVICE = re.compile(r"[A-Za-z0-9._-]{1,32}")
MAX_METADATA_DEPTH = 4
MAX_METADATA_KEYS = 64
MAX_STATUS_TEXT = 100
MAX_STATUS_EMOJI = 16
MAX_EXPIRY_S = 7 * 24 * 3600
MAX_USER_IDS = 500  # in one bulk query, one `watch` frame, and watched by one connection
MAX_USER_ID_CHARS = 256
# A bulk query of MAX_USER_IDS ids of MAX_USER_ID_CHARS ASCII characters, quoted and comma-separated, is
# about 130,000 bytes; twice that leaves room for whitespace and some escapes, and stays small.
MAX_QUERY_BYTES = 256 * 1024
Ref = str | int | None  # echoed back on the reply, so clients can match answers to requests


@dataclass(frozen=True, slots=True)
class Join:
    channel: str
    since: int | None = None  # resume: the seq the client already has
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Leave:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Receive a channel's presence without being present in it (dashboards, observers)."""

    channel: str
    since: int | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class TypingStart:
    channel: str
    timeout_s: float | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class TypingStop:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Update:
    status: str | None = None
    status_metadata: dict[str, Any] | None = None
    status_text: str | None = None
    status_emoji: str | None = None
    expires_in_s: float | None = None
    metadata: dict[str, Any] | None = None
    timeout_s: float | None = None
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Watch:
    """Follow these users' views (a friends list): services/watchers.py."""

    users: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unwatch:
    users: tuple[str, ...]
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Auth:
    """A fresh token for the open socket, before its current one expires (same user)."""

    token: str
    ref: Ref = None


Command = (
    Join | Leave | Subscribe | Unsubscribe | TypingStart | TypingStop | Heartbeat | Update | Watch | Unwatch | Auth
)
UPDATE_FIELDS = frozenset(
    {"status", "status_metadata", "status_text", "status_emoji", "expires_in_s", "metadata", "timeout_s"}
)


@dataclass(frozen=True, slots=True)
class Limits:
    policy: Policy
    max_bytes: int
    max_metadata_bytes: int


def parse_frame(text: str, limits: Limits) -> Command:
    body = _json_object(text, limits.max_bytes)
    kind = body.pop("type", None)
    ref = body.pop("ref", None)
    if not _is_ref(ref):
        raise ApiError("request.invalid", "`ref` must be a string or an integer")
    if not isinstance(kind, str):
        raise ApiError("request.invalid", "`type` is missing or not a string")
    parse = _FRAMES.get(kind)
    if parse is None:
        raise ApiError("request.unknown_type", f"unknown frame type {kind!r}")
    return parse(body, limits, ref)


def frame_ref(text: str | None, limits: Limits) -> Ref:
    """The `ref` of a frame that did not parse, to echo on its error: None unless the frame is a JSON
    object (within the size limit) whose `ref` is valid."""
    if text is None or len(text.encode()) > limits.max_bytes:
        return None
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    ref = body.get("ref") if isinstance(body, dict) else None
    return ref if _is_ref(ref) else None


def _is_ref(value: object) -> TypeGuard[Ref]:
    return value is None or (isinstance(value, str | int) and not isinstance(value, bool))


def _resumable(cls: type[Join | Subscribe]) -> Callable[[dict[str, Any], Limits, Ref], Command]:
    """A frame naming a channel, with an optional `since` to resume from."""

    def parse(body: dict[str, Any], limits: Limits, ref: Ref) -> Command:
        fields = _only(body, required={"channel"}, optional={"since"})
        return cls(channel=check_channel(fields["channel"]), since=_since(fields), ref=ref)

    return parse


def _channel_only(cls: type[Leave | Unsubscribe | TypingStop]) -> Callable[[dict[str, Any], Limits, Ref], Command]:
    def parse(body: dict[str, Any], limits: Limits, ref: Ref) -> Command:
        return cls(channel=check_channel(_only(body, required={"channel"})["channel"]), ref=ref)

    return parse


def _typing_start(body: dict[str, Any], limits: Limits, ref: Ref) -> TypingStart:
    fields = _only(body, required={"channel"}, optional={"timeout_s"})
    timeout_s = _number(fields, "timeout_s", low=0.5, high=None)
    return TypingStart(channel=check_channel(fields["channel"]), timeout_s=timeout_s, ref=ref)


def _heartbeat(body: dict[str, Any], limits: Limits, ref: Ref) -> Heartbeat:
    _only(body)
    return Heartbeat(ref=ref)


def _update_frame(body: dict[str, Any], limits: Limits, ref: Ref) -> Update:
    return _update(body, limits, ref)


def _auth(body: dict[str, Any], limits: Limits, ref: Ref) -> Auth:
    token = _only(body, required={"token"})["token"]
    if not isinstance(token, str) or not token:
        raise ApiError("request.invalid", "`token` must be a non-empty string")
    return Auth(token=token, ref=ref)


def _users(cls: type[Watch | Unwatch]) -> Callable[[dict[str, Any], Limits, Ref], Command]:
    def parse(body: dict[str, Any], limits: Limits, ref: Ref) -> Command:
        return cls(users=user_ids(_only(body, required={"users"})["users"], "users"), ref=ref)

    return parse


_FRAMES: dict[str, Callable[[dict[str, Any], Limits, Ref], Command]] = {
    "join": _resumable(Join),
    "leave": _channel_only(Leave),
    "subscribe": _resumable(Subscribe),
    "unsubscribe": _channel_only(Unsubscribe),
    "typing.start": _typing_start,
    "typing.stop": _channel_only(TypingStop),
    "heartbeat": _heartbeat,
    "update": _update_frame,
    "watch": _users(Watch),
    "unwatch": _users(Unwatch),
    "auth": _auth,
}


def parse_query_body(raw: bytes) -> tuple[str, ...]:
    """`POST /realtime/presence/query`: `{"user_ids": [...]}`."""
    return user_ids(_only(_json_object(raw, MAX_QUERY_BYTES), required={"user_ids"})["user_ids"], "user_ids")


def user_ids(value: Any, name: str) -> tuple[str, ...]:
    """1 to MAX_USER_IDS distinct user ids, in the order given."""
    if not isinstance(value, list) or not all(isinstance(u, str) and 1 <= len(u) <= MAX_USER_ID_CHARS for u in value):
        raise ApiError("request.invalid", f"`{name}` must be a list of strings of 1 to {MAX_USER_ID_CHARS} characters")
    if not value:
        raise ApiError("request.invalid", f"`{name}` must not be empty")
    if len(value) > MAX_USER_IDS:
        raise ApiError("request.too_large", f"`{name}` has more than {MAX_USER_IDS} ids")
    if len(set(value)) != len(value):
        raise ApiError("request.invalid", f"`{name}` holds an id twice")
    return tuple(value)


def parse_update_body(raw: bytes, limits: Limits, user_id: str, max_bytes: int) -> Update:
    body = _json_object(raw, max_bytes)
    named = body.pop("user_id", user_id)
    if named != user_id:
        raise ApiError("presence.forbidden_user", "the token's user may only update itself")
    return _update(body, limits, ref=None)


def _update(body: dict[str, Any], limits: Limits, ref: Ref) -> Update:
    fields = _only(body, optional=UPDATE_FIELDS)
    if not fields:
        raise ApiError("request.invalid", f"give at least one of {sorted(UPDATE_FIELDS)}")
    nulls = sorted(name for name, value in fields.items() if value is None)
    if nulls:  # null is not a value of any field; a field left out is the way to leave it unchanged
        raise ApiError("request.invalid", f"`{nulls[0]}` must not be null")
    status = fields.get("status")
    if status is not None and not isinstance(status, str):
        raise ApiError("request.invalid", "`status` must be a string")
    status_metadata = fields.get("status_metadata")
    if status_metadata is not None:
        check_metadata(status_metadata, limits.max_metadata_bytes, "status_metadata")
        if status is None:
            raise ApiError("request.invalid", "`status_metadata` goes with a `status`")
    if status is not None:
        limits.policy.check_status_metadata(limits.policy.state(status), status_metadata)
    metadata = fields.get("metadata")
    if metadata is not None:
        check_metadata(metadata, limits.max_metadata_bytes, "metadata")
    return Update(
        status=status,
        status_metadata=status_metadata,
        status_text=_text(fields, "status_text", MAX_STATUS_TEXT),
        status_emoji=_text(fields, "status_emoji", MAX_STATUS_EMOJI),
        expires_in_s=_number(fields, "expires_in_s", low=1, high=MAX_EXPIRY_S),
        metadata=metadata,
        timeout_s=_number(fields, "timeout_s", low=0, high=None),
        ref=ref,
    )


def _json_object(raw: str | bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes or (isinstance(raw, str) and len(raw.encode()) > max_bytes):  # bytes, not characters
        raise ApiError("request.too_large", f"the payload exceeds {max_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("request.malformed_json", f"malformed JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise ApiError("request.invalid", "the payload must be a JSON object")
    return body


def _only(body: dict[str, Any], required: set[str] | frozenset[str] = frozenset(),
          optional: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise ApiError("request.invalid", f"unknown field {unknown[0]!r}")
    missing = sorted(required - body.keys())
    if missing:
        raise ApiError("request.invalid", f"missing field {missing[0]!r}")
    return body


def _since(fields: dict[str, Any]) -> int | None:
    since = fields.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise ApiError("request.invalid", "`since` must be a non-negative integer")
    return since


def _number(fields: dict[str, Any], name: str, low: float, high: float | None) -> float | None:
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low or (high and value > high):
        raise ApiError("request.invalid", f"`{name}` must be a number from {low} to {high or 'any'}")
    return float(value)


def _text(fields: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = fields.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > max_chars):
        raise ApiError("request.invalid", f"`{name}` must be a string of at most {max_chars} characters")
    return value


def check_channel(value: Any) -> str:
    if not isinstance(value, str) or not CHANNEL_ID.fullmatch(value):
        raise ApiError("channel.invalid_id", "a channel id is 1-128 of A-Z a-z 0-9 . _ : @ - and starts alphanumeric")
    return value


def check_device(value: str) -> str:
    if not DEVICE.fullmatch(value):
        raise ApiError("request.invalid", "`device` is 1-32 of A-Z a-z 0-9 . _ -")
    return value


def check_metadata(metadata: Any, max_bytes: int, name: str = "metadata") -> dict[str, Any]:
    if not isinstance(metadata, dict):
        raise ApiError("request.invalid", f"`{name}` must be a JSON object")
    if _depth(metadata, MAX_METADATA_DEPTH + 1) > MAX_METADATA_DEPTH:  # first: orjson cannot encode 255 levels
        raise ApiError("request.invalid", f"`{name}` nests deeper than {MAX_METADATA_DEPTH} levels")
    if len(orjson.dumps(metadata)) > max_bytes:
        raise ApiError("request.too_large", f"`{name}` exceeds {max_bytes} bytes")
    if len(metadata) > MAX_METADATA_KEYS:
        raise ApiError("request.invalid", f"`{name}` has more than {MAX_METADATA_KEYS} keys")
    return metadata


def _depth(value: Any, limit: int) -> int:
    """Levels of objects and arrays, counted no further than `limit` (JSON may nest 1024 deep)."""
    if limit == 0 or not isinstance(value, dict | list):
        return 0
    return 1 + max((_depth(v, limit - 1) for v in (value.values() if isinstance(value, dict) else value)), default=0)

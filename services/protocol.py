"""Client input: the WebSocket frames and REST bodies a client may send, strictly validated.

Parsing turns raw text into one of the command dataclasses below or raises `ApiError` with a
stable code; nothing reaches the log before it has passed here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from services.errors import ApiError

CHANNEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
MAX_METADATA_DEPTH = 4
Ref = str | int | None  # echoed back on the reply, so clients can match answers to requests


@dataclass(frozen=True, slots=True)
class Join:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Leave:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Receive a channel's presence without being present in it (dashboards, observers)."""

    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    channel: str
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ref: Ref = None


@dataclass(frozen=True, slots=True)
class Update:
    status: str | None = None
    metadata: dict[str, Any] | None = None
    ref: Ref = None


Command = Join | Leave | Subscribe | Unsubscribe | Heartbeat | Update
_CHANNEL_COMMANDS: dict[str, type[Join | Leave | Subscribe | Unsubscribe]] = {
    "join": Join, "leave": Leave, "subscribe": Subscribe, "unsubscribe": Unsubscribe
}


@dataclass(frozen=True, slots=True)
class Limits:
    statuses: tuple[str, ...]
    max_bytes: int
    max_metadata_bytes: int


def parse_frame(text: str, limits: Limits) -> Command:
    body = _json_object(text, limits.max_bytes)
    kind = body.pop("type", None)
    ref = body.pop("ref", None)
    if ref is not None and not isinstance(ref, str | int):
        raise ApiError("request.invalid", "`ref` must be a string or an integer")
    if kind in _CHANNEL_COMMANDS:
        channel = check_channel(_only(body, required=frozenset({"channel"}))["channel"])
        return _CHANNEL_COMMANDS[kind](channel=channel, ref=ref)
    if kind == "heartbeat":
        _only(body)
        return Heartbeat(ref=ref)
    if kind == "update":
        return _update(body, limits, ref)
    if not isinstance(kind, str):
        raise ApiError("request.invalid", "`type` is missing or not a string")
    raise ApiError("request.unknown_type", f"unknown frame type {kind!r}")


def parse_update_body(raw: bytes, limits: Limits, user_id: str, max_bytes: int) -> Update:
    body = _json_object(raw, max_bytes)
    named = body.pop("user_id", user_id)
    if named != user_id:
        raise ApiError("presence.forbidden_user", "the token's user may only update itself")
    return _update(body, limits, ref=None)


def _update(body: dict[str, Any], limits: Limits, ref: Ref) -> Update:
    fields = _only(body, optional=frozenset({"status", "metadata"}))
    if not fields:
        raise ApiError("request.invalid", "give `status`, `metadata` or both")
    status = fields.get("status")
    if status is not None:
        if not isinstance(status, str):
            raise ApiError("request.invalid", "`status` must be a string")
        if status not in limits.statuses:
            raise ApiError("presence.unknown_status", f"unknown status {status!r}; known: {list(limits.statuses)}")
    metadata = fields.get("metadata")
    if metadata is not None:
        _check_metadata(metadata, limits.max_metadata_bytes)
    return Update(status=status, metadata=metadata, ref=ref)


def _json_object(raw: str | bytes, max_bytes: int) -> dict[str, Any]:
    if len(raw) > max_bytes:
        raise ApiError("request.too_large", f"the payload exceeds {max_bytes} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("request.malformed_json", f"malformed JSON: {exc.msg}") from exc
    if not isinstance(body, dict):
        raise ApiError("request.invalid", "the payload must be a JSON object")
    return body


def _only(body: dict[str, Any], required: frozenset[str] = frozenset(), optional: frozenset[str] = frozenset()) -> dict:
    unknown = sorted(body.keys() - required - optional)
    if unknown:
        raise ApiError("request.invalid", f"unknown field {unknown[0]!r}")
    missing = sorted(required - body.keys())
    if missing:
        raise ApiError("request.invalid", f"missing field {missing[0]!r}")
    return body


def check_channel(value: Any) -> str:
    if not isinstance(value, str) or not CHANNEL_ID.fullmatch(value):
        raise ApiError("channel.invalid_id", "a channel id is 1-128 of A-Z a-z 0-9 . _ : @ - and starts alphanumeric")
    return value


def _check_metadata(metadata: Any, max_bytes: int) -> None:
    if not isinstance(metadata, dict):
        raise ApiError("request.invalid", "`metadata` must be a JSON object")
    if len(orjson.dumps(metadata)) > max_bytes:
        raise ApiError("request.too_large", f"`metadata` exceeds {max_bytes} bytes")
    if _depth(metadata) > MAX_METADATA_DEPTH:
        raise ApiError("request.invalid", f"`metadata` nests deeper than {MAX_METADATA_DEPTH} levels")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0

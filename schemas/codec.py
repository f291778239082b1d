"""The orjson codec for every record on every topic, with strict validation on the way in.

Decoding rejects unknown fields, missing fields, wrong types and unknown `type` tags with a
`DecodeError`, so a consumer never acts on a record it does not fully understand. Encoding adds
the `type` tag of tagged records (events, changes) next to their fields.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import orjson

from schemas.changes import CHANGE_TYPES, Change, ChannelView
from schemas.events import EVENT_TYPES, SCHEMA_VERSION, Event, EventBatch

T = TypeVar("T")


class DecodeError(ValueError):
    """A record or payload does not match its schema. `path` points at the offending field."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


def _tagged(obj: Any) -> dict[str, Any]:
    out = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    tag = getattr(type(obj), "type", None)
    if isinstance(tag, str):
        out = {"type": tag, **out}
    return out


def to_builtins(obj: Any) -> Any:
    """The JSON-ready form of a record (dicts, lists, strings, numbers)."""
    return orjson.loads(encode(obj))


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_tagged, option=orjson.OPT_PASSTHROUGH_DATACLASS)


def decode(data: bytes | str, cls: type[T]) -> T:
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"malformed JSON ({exc.msg})") from exc
    return from_builtins(raw, cls)


def from_builtins(raw: Any, cls: type[T]) -> T:
    return _convert(raw, cls, "")


def decode_event(raw: Any) -> Event:
    return _convert(raw, Event, "")


def decode_change(raw: Any) -> Change:
    return _convert(raw, Change, "")


_POLYMORPHIC: dict[type, dict[str, type]] = {Event: EVENT_TYPES, Change: CHANGE_TYPES}


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    required = frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return fields, required


def _convert(raw: Any, hint: Any, path: str) -> Any:
    if hint is Any:
        return raw
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if raw is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(raw, option, path)
            except DecodeError as exc:
                errors.append(exc.reason)
        raise DecodeError("; ".join(errors), path)
    if origin is Literal:
        if raw not in get_args(hint):
            raise DecodeError(f"must be one of {list(get_args(hint))}", path)
        return raw
    if origin is tuple:
        item = get_args(hint)[0]
        if not isinstance(raw, list):
            raise DecodeError("must be an array", path)
        return tuple(_convert(x, item, f"{path}[{i}]") for i, x in enumerate(raw))
    if origin is dict or hint is dict:
        if not isinstance(raw, dict):
            raise DecodeError("must be an object", path)
        value_hint = get_args(hint)[1] if get_args(hint) else Any
        if value_hint is not Any:
            for key, value in raw.items():
                _convert(value, value_hint, f"{path}.{key}")
        return raw
    if hint in _POLYMORPHIC:
        if not isinstance(raw, dict):
            raise DecodeError("must be an object", path)
        tag = raw.get("type")
        concrete = _POLYMORPHIC[hint].get(tag) if isinstance(tag, str) else None
        if concrete is None:
            raise DecodeError(f"unknown type {tag!r}", f"{path}.type" if path else "type")
        return _record(raw, concrete, path, skip=("type",))
    if dataclasses.is_dataclass(hint):
        return _record(raw, hint, path, skip=())
    return _scalar(raw, hint, path)


def _record(raw: Any, cls: type, path: str, skip: tuple[str, ...]) -> Any:
    if not isinstance(raw, dict):
        raise DecodeError("must be an object", path)
    fields, required = _fields(cls)
    prefix = f"{path}." if path else ""
    unknown = sorted(k for k in raw if k not in fields and k not in skip)
    if unknown:
        raise DecodeError("unknown field", prefix + unknown[0])
    missing = sorted(required - raw.keys())
    if missing:
        raise DecodeError("missing field", prefix + missing[0])
    values = {name: _convert(raw[name], fields[name], prefix + name) for name in fields if name in raw}
    if values.get("v", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise DecodeError(f"unsupported schema version {values['v']!r}", prefix + "v")
    return cls(**values)


def _scalar(raw: Any, hint: Any, path: str) -> Any:
    if hint is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    elif hint is float:
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    else:
        ok = isinstance(raw, hint)
    if not ok:
        raise DecodeError(f"must be {getattr(hint, '__name__', hint)}", path)
    return raw


__all__ = [
    "ChannelView",
    "DecodeError",
    "EventBatch",
    "decode",
    "decode_change",
    "decode_event",
    "encode",
    "from_builtins",
    "to_builtins",
]

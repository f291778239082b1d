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
from collections.abc import Callable
from typing import Any, Literal, TypeVar, Union, cast, get_args, get_origin

import orjson

from schemas.changes import CHANGE_TYPES, Change, ChannelView
from schemas.events import EVENT_SCHEMA_VERSION, EVENT_TYPES, SCHEMA_VERSION, USER_SCHEMA_VERSION, Event, EventBatch
from schemas.snapshots import UserSnapshot
from schemas.state import UserPresence
from schemas.upcasters import BATCH_UPCASTERS, EVENT_UPCASTERS, USER_SNAPSHOT_UPCASTERS, USER_UPCASTERS, upcaster

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
    decoded: T = _converter(cast(Any, cls))(raw)  # `functools.cache` wants a Hashable; a class is one
    return decoded


def decode_event(raw: Any) -> Event:
    return _converter(Event)(raw)  # type: ignore[no-any-return]


def decode_change(raw: Any) -> Change:
    return _converter(Change)(raw)  # type: ignore[no-any-return]


_POLYMORPHIC: dict[type, dict[str, type]] = {Event: EVENT_TYPES, Change: CHANGE_TYPES}
# Records with older versions still read: raw records of those are upcast before decoding (schemas/upcasters.py).
_UPCASTS = {
    Event: upcaster(EVENT_UPCASTERS, EVENT_SCHEMA_VERSION),
    EventBatch: upcaster(BATCH_UPCASTERS, EVENT_SCHEMA_VERSION),
    UserPresence: upcaster(USER_UPCASTERS, USER_SCHEMA_VERSION),
    UserSnapshot: upcaster(USER_SNAPSHOT_UPCASTERS, USER_SCHEMA_VERSION),
}

# Decoding runs once per record on every hop, so each type hint is compiled once into a converter
# (raw JSON value -> typed value). Error paths are relative and prefixed on the way out, so the
# common case builds no path strings.
Converter = Callable[[Any], Any]


def _joined(outer: str, inner: str) -> str:
    if not inner:
        return outer
    if not outer or inner.startswith("["):
        return outer + inner
    return f"{outer}.{inner}"


def _at(outer: str, exc: DecodeError) -> DecodeError:
    return DecodeError(exc.reason, _joined(outer, exc.path))


@functools.cache
def _converter(hint: Any) -> Converter:
    if hint is Any:
        return _identity
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return _union(get_args(hint))
    if origin is Literal:
        return _literal(get_args(hint))
    if origin is tuple:
        return _tuple(get_args(hint)[0])
    if origin is dict or hint is dict:
        return _dict(get_args(hint)[1] if get_args(hint) else Any)
    if hint in _POLYMORPHIC:
        return _tagged_record(_POLYMORPHIC[hint])
    if dataclasses.is_dataclass(hint):
        return _record(cast(Any, hint), skip=())
    return _scalar(hint)


def _identity(raw: Any) -> Any:
    return raw


def _union(options: tuple[Any, ...]) -> Converter:
    nullable = type(None) in options
    converters = [_converter(o) for o in options if o is not type(None)]

    def convert(raw: Any) -> Any:
        if raw is None and nullable:
            return None
        errors = []
        for option in converters:
            try:
                return option(raw)
            except DecodeError as exc:
                errors.append(exc.reason)
        raise DecodeError("; ".join(errors))

    return convert


def _literal(allowed: tuple[Any, ...]) -> Converter:
    def convert(raw: Any) -> Any:
        if raw not in allowed:
            raise DecodeError(f"must be one of {list(allowed)}")
        return raw

    return convert


def _tuple(item_hint: Any) -> Converter:
    item = _converter(item_hint)

    def convert(raw: Any) -> Any:
        if not isinstance(raw, list):
            raise DecodeError("must be an array")
        out = []
        for i, x in enumerate(raw):
            try:
                out.append(item(x))
            except DecodeError as exc:
                raise _at(f"[{i}]", exc) from None
        return tuple(out)

    return convert


def _dict(value_hint: Any) -> Converter:
    value = _converter(value_hint) if value_hint is not Any else None

    def convert(raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise DecodeError("must be an object")
        if value is None:
            return raw
        out = {}
        for key, v in raw.items():
            try:
                out[key] = value(v)
            except DecodeError as exc:
                raise _at(str(key), exc) from None
        return out

    return convert


def _tagged_record(by_tag: dict[str, type]) -> Converter:
    def convert(raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise DecodeError("must be an object")
        tag = raw.get("type")
        concrete = by_tag.get(tag) if isinstance(tag, str) else None
        if concrete is None:
            raise DecodeError(f"unknown type {tag!r}", "type")
        return _record(concrete, skip=("type",))(raw)

    return convert


@functools.cache
def _record(cls: type, skip: tuple[str, ...]) -> Converter:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _converter(hints[f.name]) for f in dataclasses.fields(cls)}
    known = fields.keys() | set(skip)
    version = next(f.default for f in dataclasses.fields(cls) if f.name == "v") if "v" in fields else SCHEMA_VERSION
    upcast = next((u for base, u in _UPCASTS.items() if issubclass(cls, base)), None)
    required = frozenset(
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )

    def convert(raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise DecodeError("must be an object")
        if upcast is not None and raw.get("v", version) != version:
            raw = upcast(raw)
        if not known.issuperset(raw):
            raise DecodeError("unknown field", sorted(k for k in raw if k not in known)[0])
        if not required.issubset(raw):
            raise DecodeError("missing field", sorted(required - raw.keys())[0])
        values = {}
        for name, value in raw.items():
            field = fields.get(name)
            if field is None:
                continue  # the tag
            try:
                values[name] = field(value)
            except DecodeError as exc:
                raise _at(name, exc) from None
        if values.get("v", version) != version:
            raise DecodeError(f"unsupported schema version {values['v']!r}", "v")
        return cls(**values)

    return convert


def _scalar(hint: Any) -> Converter:
    name = getattr(hint, "__name__", hint)
    if hint is int:
        def ok(raw: Any) -> bool:
            return isinstance(raw, int) and not isinstance(raw, bool)
    elif hint is float:
        def ok(raw: Any) -> bool:
            return isinstance(raw, (int, float)) and not isinstance(raw, bool)
    else:
        def ok(raw: Any) -> bool:
            return isinstance(raw, hint)

    def convert(raw: Any) -> Any:
        if not ok(raw):
            raise DecodeError(f"must be {name}")
        return raw

    return convert


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

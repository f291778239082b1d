"""The JSON Schemas in schemas/json/ must describe exactly the records schemas.codec writes and accepts.

The files are written by hand for readers outside Python; these checks fail as soon as a dataclass
gains, loses or retypes a field (or a default) without its schema following, or the other way round.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from schemas import topics
from schemas.changes import CHANGE_TYPES, Change, ChannelView, Departure, Member, UserView
from schemas.codec import DecodeError, decode, encode, from_builtins, to_builtins
from schemas.dead_letters import DeadLetter
from schemas.erasures import UserErasure
from schemas.events import EVENT_TYPES, Event, EventBatch
from schemas.probes import ProbeAnswered
from schemas.snapshots import ChannelSnapshot, UserSnapshot
from schemas.state import AppliedSource, ChannelState, Connection, EdgeLease, UserPresence

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
BASE_URI = "https://presence.example/schemas/"

# Topic -> schema of its values. Faust names the table changelogs "{app id}-{table}-changelog".
TOPIC_SCHEMAS = {
    "presence.events": "event-batch.v2.json",
    "presence.changes": "change.v1.json",
    "presence.channel-changes": "change.v1.json",
    "presence.channels": "channel-view.v1.json",
    "presence.users": "user-view.v1.json",
    "presence.dead-letters": "dead-letter.v1.json",
    "presence.probes": "probe-answer.v1.json",
    "presence-users-changelog": "user-presence.v2.json",
    "presence-channels-changelog": "channel-state.v1.json",
    "presence-leases-changelog": "edge-lease.v1.json",
    "presence.channel-snapshots": "channel-snapshot.v1.json",
    "presence.user-snapshots": "user-snapshot.v2.json",
    "presence.erasures": "user-erasure.v1.json",
}

# Schema file -> (the type its root describes, every dataclass it describes).
FILES: dict[str, tuple[type, tuple[type, ...]]] = {
    "event-batch.v2.json": (EventBatch, (EventBatch, *EVENT_TYPES.values())),
    "change.v1.json": (Change, (*CHANGE_TYPES.values(), Member)),
    "channel-view.v1.json": (ChannelView, (ChannelView, Member, Departure)),
    "user-view.v1.json": (UserView, (UserView,)),
    "dead-letter.v1.json": (DeadLetter, (DeadLetter,)),
    "probe-answer.v1.json": (ProbeAnswered, (ProbeAnswered,)),
    "user-presence.v2.json": (UserPresence, (UserPresence, Connection)),
    "channel-state.v1.json": (ChannelState, (ChannelState, Member, AppliedSource)),
    "edge-lease.v1.json": (EdgeLease, (EdgeLease,)),
    "channel-snapshot.v1.json": (ChannelSnapshot, (ChannelSnapshot, ChannelState, Member, AppliedSource)),
    "user-snapshot.v2.json": (UserSnapshot, (UserSnapshot, UserPresence, Connection, EdgeLease)),
    "user-erasure.v1.json": (UserErasure, (UserErasure,)),
}
# Schema files of older versions, kept for the records of those versions the log still holds: the golden
# samples of each must validate against them and decode through the upcasters (schemas/upcasters.py).
SUPERSEDED: dict[str, type] = {
    "event-batch.v1.json": EventBatch,
    "user-presence.v1.json": UserPresence,
    "user-snapshot.v1.json": UserSnapshot,
}
# Tagged unions: records are decoded through their base, which dispatches on `type`.
UNIONS: dict[type, dict[str, type]] = {Event: EVENT_TYPES, Change: CHANGE_TYPES}
RECORDS = [(name, cls) for name, (_, classes) in FILES.items() for cls in classes]
RECORD_IDS = [f"{name}:{cls.__name__}" for name, cls in RECORDS]


# Reading the Python types.


def fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def defaults(cls: type) -> dict[str, Any]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def tag(cls: type) -> str | None:
    value = getattr(cls, "type", None)
    return value if isinstance(value, str) else None


def decode_as(cls: type) -> type:
    return next((base for base in UNIONS if issubclass(cls, base)), cls)


def nullable(hint: Any) -> Any | None:
    """The X of `X | None`, else None."""
    args = get_args(hint)
    if get_origin(hint) in (Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return next(a for a in args if a is not type(None))
    return None


# Reading the schema files.


@cache
def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / name).read_text())


def node(name: str, cls: type) -> dict[str, Any]:
    schema = load(name)
    return schema if cls is FILES[name][0] else schema["$defs"][cls.__name__]


@cache
def validator(name: str, cls: type) -> Draft202012Validator:
    """Validates against the part of `name` that describes `cls` (format checking stays off)."""
    schema = load(name)
    registry = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    root = FILES[name][0] if name in FILES else SUPERSEDED[name]
    target = schema if cls is root else {"$ref": f"{schema['$id']}#/$defs/{cls.__name__}"}
    return Draft202012Validator(target, registry=registry)


def expected(hint: Any) -> dict[str, Any]:
    """The keywords a property of this Python type must carry (a schema may add more, e.g. description)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is str:
        return {"type": "string"}
    if origin is Literal:
        return {"enum": list(args)}
    if origin is tuple:
        return {"type": "array", "items": expected(args[0])}
    if origin is dict:
        values = {} if args[1] is Any else {"additionalProperties": expected(args[1])}
        return {"type": "object", **values}
    if (inner := nullable(hint)) is not None and "type" in expected(inner):
        return {**expected(inner), "type": [expected(inner)["type"], "null"]}
    if inner is not None:  # a nullable record
        return {"anyOf": [expected(inner), {"type": "null"}]}
    if dataclasses.is_dataclass(hint) or hint in UNIONS:
        return {"$ref": f"#/$defs/{hint.__name__}"}
    raise NotImplementedError(f"no JSON Schema mapping for {hint!r}: extend expected()")


def assert_covers(actual: dict[str, Any], want: dict[str, Any], where: str) -> None:
    for key, value in want.items():
        assert key in actual, f"{where}: no {key!r}"
        if isinstance(value, dict):
            assert_covers(actual[key], value, f"{where}.{key}")
        else:
            assert actual[key] == value, f"{where}.{key}: {actual[key]!r}, expected {value!r}"


# Files and topics.


@pytest.mark.parametrize("name", sorted(FILES))
def test_schema_file_is_draft_2020_12(name: str) -> None:
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE_URI + name


def test_every_topic_has_a_schema_file_and_every_file_a_topic() -> None:
    assert {spec.name for spec in topics.ALL} <= TOPIC_SCHEMAS.keys()
    assert set(TOPIC_SCHEMAS.values()) == set(FILES) == {p.name for p in SCHEMA_DIR.glob("*.json")} - set(SUPERSEDED)
    for spec in topics.ALL:  # TopicSpec.value names the record, e.g. "Change (member.* only)"
        assert load(TOPIC_SCHEMAS[spec.name])["title"] == spec.value.split()[0]


@pytest.mark.parametrize("name", sorted(FILES))
def test_defs_are_exactly_the_described_records(name: str) -> None:
    root, classes = FILES[name]
    unions = {u for u in UNIONS if u is not root and any(issubclass(c, u) for c in classes)}
    want = {c.__name__ for c in classes if c is not root} | {u.__name__ for u in unions}
    assert set(load(name).get("$defs", {})) == want


@pytest.mark.parametrize(("name", "base"), [("event-batch.v2.json", Event), ("change.v1.json", Change)])
def test_union_lists_every_type_tag(name: str, base: type) -> None:
    union = node(name, base) if base is FILES[name][0] else load(name)["$defs"][base.__name__]
    assert {ref["$ref"] for ref in union["oneOf"]} == {f"#/$defs/{c.__name__}" for c in UNIONS[base].values()}
    assert set(union["properties"]["type"]["enum"]) == set(UNIONS[base])
    assert union["required"] == ["type"]


# Records: fields, required, types, defaults, descriptions.


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_properties_and_required_match_the_dataclass(name: str, cls: type) -> None:
    schema = node(name, cls)
    extra = {"type"} if tag(cls) else set()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == set(fields(cls)) | extra
    assert set(schema["required"]) == (set(fields(cls)) - set(defaults(cls))) | extra
    assert len(schema["required"]) == len(set(schema["required"]))


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_property_types_match_the_type_hints(name: str, cls: type) -> None:
    props = node(name, cls)["properties"]
    if tag(cls):
        assert props["type"]["const"] == tag(cls)
    for field, hint in fields(cls).items():
        want = {"type": "integer", "const": defaults(cls)["v"]} if field == "v" else expected(hint)
        assert_covers(props[field], want, f"{cls.__name__}.{field}")


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_defaults_are_declared_as_the_codec_writes_them(name: str, cls: type) -> None:
    props = node(name, cls)["properties"]
    for field in fields(cls):
        if field in defaults(cls):
            assert props[field].get("default", ...) == to_builtins(defaults(cls)[field]), field
        else:
            assert "default" not in props[field], field


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_descriptions_come_from_the_docstrings(name: str, cls: type) -> None:
    schema = node(name, cls)
    assert schema["description"].strip()
    assert all(p.get("description", "").strip() for p in schema["properties"].values())
    doc = cls.__doc__ or ""
    if not doc.startswith(f"{cls.__name__}("):  # dataclasses without a docstring get their signature
        assert schema["description"] == " ".join(doc.split())


# Sample records: every field set, and only the required ones.


def sample(hint: Any, full: bool) -> Any:
    """A value of `hint`: with `full` every optional part is set, else every optional part is left out."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return True
    if hint is int:
        return 1_700_000_000_000
    if hint is str:
        return "s-1"
    if origin is Literal:
        return args[-1]
    if (inner := nullable(hint)) is not None:
        return sample(inner, full) if full else None
    if origin is tuple:
        items = list(UNIONS.get(args[0], {}).values()) or [args[0]]  # one of each tagged type
        return tuple(sample(item, full) for item in items) if full else ()
    if origin is dict:
        return {"k": sample(args[1], full) if args[1] is not Any else ["any", 1, None]} if full else {}
    if dataclasses.is_dataclass(hint):
        optional = defaults(hint)
        return hint(**{
            f: (not optional[f]) if h is bool and f in optional else sample(h, full)  # a bool off its default
            for f, h in fields(hint).items() if f != "v" and (full or f not in optional)
        })
    raise NotImplementedError(f"no sample for {hint!r}: extend sample()")


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
@pytest.mark.parametrize("full", [True, False], ids=["full", "bare"])
def test_sample_validates_and_round_trips(name: str, cls: type, full: bool) -> None:
    record = sample(cls, full)
    if full:  # the sampler must really set every optional field
        changed = {f for f, d in defaults(cls).items() if getattr(record, f) != d}
        assert changed == set(defaults(cls)) - {"v"}
    data = encode(record)
    validator(name, cls).validate(orjson.loads(data))
    assert decode(data, decode_as(cls)) == record


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_required_fields_alone_are_a_valid_record(name: str, cls: type) -> None:
    record = sample(cls, full=False)
    raw = {k: v for k, v in to_builtins(record).items() if k in node(name, cls)["required"]}
    validator(name, cls).validate(raw)
    assert from_builtins(raw, decode_as(cls)) == record


# Bad records: both the schema and the codec reject them.


def assert_rejected(name: str, cls: type, raw: Any, field: str) -> None:
    assert not validator(name, cls).is_valid(raw), raw
    with pytest.raises(DecodeError) as info:
        from_builtins(raw, decode_as(cls))
    path = info.value.path
    assert path == field or path.startswith((f"{field}.", f"{field}[")), (path, field)


def wrong_values(hint: Any) -> list[Any]:
    """JSON values a field of this type must not take; `true` also checks bool is not taken as int."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return [1, 0, "true", None]
    if hint is int:
        return [True, "1", 1.5, None]
    if hint is str:
        return [True, 1, None, ["s"]]
    if origin is Literal:
        return [f"not-{args[0]}", 1, None]
    if (inner := nullable(hint)) is not None:
        return [v for v in wrong_values(inner) if v is not None]
    if origin is tuple:  # an item of the wrong type too (dict values are not checked by the codec)
        return [True, "s", {}, None, [wrong_values(args[0])[0]]]
    if origin is dict:
        return [True, [], "s", None]
    if dataclasses.is_dataclass(hint) or hint in UNIONS:
        return [True, [], "s", None]
    raise NotImplementedError(f"no wrong values for {hint!r}: extend wrong_values()")


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_unknown_field_is_rejected(name: str, cls: type) -> None:
    assert_rejected(name, cls, {**to_builtins(sample(cls, True)), "unexpected": 1}, "unexpected")


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_missing_required_field_is_rejected(name: str, cls: type) -> None:
    raw = to_builtins(sample(cls, True))
    for field in set(fields(cls)) - set(defaults(cls)):
        assert_rejected(name, cls, {k: v for k, v in raw.items() if k != field}, field)


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
def test_wrong_type_is_rejected(name: str, cls: type) -> None:
    raw = to_builtins(sample(cls, True))
    for field, hint in fields(cls).items():
        bad_values = [defaults(cls)["v"] + 1, True, "1"] if field == "v" else wrong_values(hint)
        for bad in bad_values:
            assert_rejected(name, cls, {**raw, field: bad}, field)


TAGGED = [(name, cls) for name, cls in RECORDS if tag(cls)]


@pytest.mark.parametrize(("name", "cls"), TAGGED, ids=[cls.__name__ for _, cls in TAGGED])
def test_unknown_or_missing_type_tag_is_rejected(name: str, cls: type) -> None:
    raw = to_builtins(sample(cls, True))
    assert_rejected(name, cls, {**raw, "type": "no.such_type"}, "type")
    assert_rejected(name, cls, {k: v for k, v in raw.items() if k != "type"}, "type")
    # Through the union too: the root of change.v1.json, or an event inside a batch.
    if issubclass(cls, Change):
        assert_rejected(name, Change, {**raw, "type": "no.such_type"}, "type")
    else:
        in_batch = {"events": [{**raw, "type": "no.such_type"}]}
        assert_rejected("event-batch.v2.json", EventBatch, in_batch, "events[0].type")


def test_codec_rejects_a_dict_value_of_the_wrong_type() -> None:
    raw = {**to_builtins(sample(UserPresence, True)), "channel_since": {"lobby": "yesterday"}}
    assert_rejected("user-presence.v2.json", UserPresence, raw, "channel_since")


# Generated records.

INTS = st.integers(-(2**63), 2**63 - 1)  # orjson's integer range
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | INTS | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


def strategy(hint: Any) -> st.SearchStrategy[Any]:
    origin, args = get_origin(hint), get_args(hint)
    if hint is bool:
        return st.booleans()
    if hint is int:
        return INTS
    if hint is str:
        return st.text()
    if hint is Any:
        return JSON_VALUES
    if origin is Literal:
        return st.sampled_from(args)
    if (inner := nullable(hint)) is not None:
        return st.none() | strategy(inner)
    if origin is tuple:
        return st.lists(strategy(args[0]), max_size=3).map(tuple)
    if origin is dict:
        return st.dictionaries(st.text(), strategy(args[1]), max_size=3)
    if hint in UNIONS:
        return st.one_of([records(c) for c in UNIONS[hint].values()])
    if dataclasses.is_dataclass(hint):
        return records(hint)
    raise NotImplementedError(f"no strategy for {hint!r}: extend strategy()")


@cache
def records(cls: type) -> st.SearchStrategy[Any]:
    """Records of `cls` with every field drawn (builds() alone would leave defaulted fields alone)."""
    return st.builds(cls, **{
        f: st.just(defaults(cls)["v"]) if f == "v" else strategy(h) for f, h in fields(cls).items()
    })


@pytest.mark.parametrize(("name", "cls"), RECORDS, ids=RECORD_IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_generated_records_round_trip_and_validate(name: str, cls: type, data: st.DataObject) -> None:
    record = data.draw(records(cls))
    encoded = encode(record)
    assert decode(encoded, decode_as(cls)) == record
    validator(name, cls).validate(orjson.loads(encoded))
    if issubclass(cls, Change):
        validator(name, Change).validate(orjson.loads(encoded))

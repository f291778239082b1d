"""schemas.codec: strict decoding with errors that point at the offending field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.changes import Change, ChannelView, Member, MemberJoined, UserWentOffline
from schemas.codec import DecodeError, decode, decode_change, decode_event, encode, from_builtins, to_builtins
from schemas.events import (
    EVENT_SCHEMA_VERSION,
    SCHEMA_VERSION,
    USER_SCHEMA_VERSION,
    ChannelJoined,
    ConnectionOpened,
    Event,
    EventBatch,
    Heartbeat,
)
from schemas.snapshots import UserSnapshot
from schemas.state import ChannelState, Connection, UserPresence

T0 = 1_700_000_000_000


def heartbeat(**overrides: Any) -> dict[str, Any]:
    raw = to_builtins(Heartbeat(event_id="e1", user_id="u1", connection_id="c1", edge_id="edge-1", at=T0))
    return {**raw, **overrides}


def batch(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"events": list(events), "v": 1})


def view(**member_overrides: Any) -> dict[str, Any]:
    member = Member(user_id="u1", status="online", joined_at=T0, last_seen=T0, connections=1)
    raw = to_builtins(ChannelView(channel="lobby", seq=1, at=T0, members=(member, member)))
    raw["members"][1].update(member_overrides)
    return raw


def decode_error(data: bytes | str, cls: type) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(data, cls)
    return info.value


# Round trip and the type tag.


def test_round_trip_of_a_batch_with_nested_records() -> None:
    opened = ConnectionOpened(event_id="e1", user_id="u1", connection_id="c1", edge_id="edge-1", at=T0,
                              timeout_ms=30_000, device="ios")
    joined = ChannelJoined(event_id="e2", user_id="u1", connection_id="c1", edge_id="edge-1", at=T0 + 1,
                           channel="lobby")
    original = EventBatch(events=(opened, joined))
    assert decode(encode(original), EventBatch) == original
    assert decode(encode(original).decode(), EventBatch) == original  # str works as well as bytes


def test_tagged_records_carry_their_type_first() -> None:
    change = UserWentOffline(change_id="e1/0", user_id="u1", at=T0, reason="timeout", last_seen=T0)
    raw = orjson.loads(encode(change))
    assert next(iter(raw)) == "type"
    assert raw["type"] == "user.offline"
    assert decode_change(raw) == change


def test_untagged_records_have_no_type() -> None:
    connection = Connection(connection_id="c1", edge_id="e", opened_at=1, last_heartbeat=1, timeout_ms=1)
    assert "type" not in to_builtins(connection)


# Errors name the field.


def test_unknown_field_names_its_path() -> None:
    error = decode_error(batch(heartbeat(), heartbeat(x=1)), EventBatch)
    assert str(error) == "events[1].x: unknown field"
    assert (error.path, error.reason) == ("events[1].x", "unknown field")


def test_missing_field_names_its_path() -> None:
    raw = heartbeat()
    del raw["connection_id"]
    assert str(decode_error(batch(raw), EventBatch)) == "events[0].connection_id: missing field"


def test_wrong_type_in_a_nested_record_names_its_path() -> None:
    error = decode_error(orjson.dumps(view(connections="1")), ChannelView)
    assert str(error) == "members[1].connections: must be int"


def test_unknown_type_tag_names_its_path() -> None:
    assert str(decode_error(batch(heartbeat(type="heartbeat.v2")), EventBatch)) == (
        "events[0].type: unknown type 'heartbeat.v2'"
    )
    with pytest.raises(DecodeError, match=r"^type: unknown type None$"):
        decode_event({k: v for k, v in heartbeat().items() if k != "type"})


def test_a_concrete_tag_cannot_decode_as_another_family() -> None:
    with pytest.raises(DecodeError, match=r"^type: unknown type 'heartbeat'$"):
        decode_change(heartbeat())


def test_literal_outside_its_values_is_rejected() -> None:
    raw = to_builtins(UserWentOffline(change_id="e1/0", user_id="u1", at=T0, reason="leave", last_seen=T0))
    with pytest.raises(DecodeError, match=r"^reason: must be one of \['leave', 'timeout'\]$"):
        decode_change({**raw, "reason": "kicked"})


def test_not_an_object_is_rejected() -> None:
    assert str(decode_error(b"[]", EventBatch)) == "must be an object"
    assert str(decode_error(b'{"events": [1]}', EventBatch)) == "events[0]: must be an object"
    assert str(decode_error(b'{"events": {}}', EventBatch)) == "events: must be an array"


# Numbers: bool is not an int, nor is a float.


@pytest.mark.parametrize("value", [True, False, 1.0, 1.5, "1", None])
def test_int_field_rejects_non_integers(value: Any) -> None:
    assert str(decode_error(batch(heartbeat(at=value)), EventBatch)) == "events[0].at: must be int"


def test_bool_is_not_an_int_in_nested_and_optional_fields() -> None:
    assert str(decode_error(orjson.dumps(view(connections=True)), ChannelView)) == (
        "members[1].connections: must be int"
    )
    error = decode_error(b'{"user_id": "u1", "last_seen": true}', UserPresence)
    assert str(error) == "last_seen: must be int"


def test_optional_field_takes_null() -> None:
    assert decode(b'{"user_id": "u1", "last_seen": null}', UserPresence) == UserPresence(user_id="u1")


# Malformed JSON.


MALFORMED = [b"", b"{", b'{"events": [}', b"not json", b"\xff\xfe", b'{"a": 1} 2', "{'a': 1}"]


@pytest.mark.parametrize("data", MALFORMED)
def test_malformed_json_raises_decode_error(data: bytes | str) -> None:
    error = decode_error(data, EventBatch)
    assert isinstance(error, ValueError)
    assert error.reason.startswith("malformed JSON")
    assert error.path == ""


# Schema versions.


def test_unsupported_version_of_the_record_is_rejected() -> None:
    assert str(decode_error(b'{"events": [], "v": 3}', EventBatch)) == "v: unsupported schema version 3"
    assert str(decode_error(b'{"events": [], "v": 0}', EventBatch)) == "v: unsupported schema version 0"


def test_unsupported_version_of_a_nested_record_is_rejected() -> None:
    error = decode_error(batch(heartbeat(), heartbeat(v=EVENT_SCHEMA_VERSION + 1)), EventBatch)
    assert str(error) == "events[1].v: unsupported schema version 3"


def test_version_1_events_are_upcast_to_version_2() -> None:
    v1 = {k: v for k, v in heartbeat(v=1).items() if k != "service"}
    decoded = decode(batch(v1), EventBatch)
    assert decoded.v == decoded.events[0].v == EVENT_SCHEMA_VERSION == 2
    assert decoded.events[0].service is None
    assert decode_event(v1) == decode_event(heartbeat())


@pytest.mark.parametrize("version", [True, "1", 1.0])
def test_only_the_integer_1_is_upcast(version: Any) -> None:
    error = decode_error(batch(heartbeat(v=version)), EventBatch)
    assert error.path == "events[0].v"


@pytest.mark.parametrize("version", [0, True, "1", 1.0, None])
def test_version_must_be_the_integer_1(version: Any) -> None:
    with pytest.raises(DecodeError, match=r"^v: "):
        from_builtins({"user_id": "u1", "v": version}, UserPresence)


def test_missing_version_reads_as_the_current_version() -> None:
    # `v` has a default, so it is optional on the way in; writers always write it.
    assert decode(b'{"user_id": "u1"}', UserPresence).v == USER_SCHEMA_VERSION
    assert decode(b'{"channel": "lobby"}', ChannelState).v == SCHEMA_VERSION


def test_version_1_user_states_are_upcast_to_version_2() -> None:
    v1 = {"user_id": "u1", "recent_event_ids": ["e1"], "v": 1}
    decoded = decode(orjson.dumps(v1), UserPresence)
    assert decoded == UserPresence(user_id="u1", recent_event_ids=("e1",), forced_offline_connections=())
    assert decoded.v == USER_SCHEMA_VERSION == 2


def test_version_1_user_snapshots_are_upcast_with_their_state() -> None:
    v1 = {"snapshot_id": "s", "partition": 0, "position": 7, "at": T0, "state": {"user_id": "u1", "v": 1}, "v": 1}
    decoded = decode(orjson.dumps(v1), UserSnapshot)
    assert decoded.v == USER_SCHEMA_VERSION and decoded.state == UserPresence(user_id="u1")


def test_tagged_records_decode_through_their_base() -> None:
    member = Member(user_id="u1", status="online", joined_at=T0, last_seen=T0, connections=1)
    change = MemberJoined(change_id="e1/1", user_id="u1", at=T0, channel="lobby", member=member)
    assert decode(encode(change), Change) == change
    assert decode(orjson.dumps(heartbeat()), Event) == Heartbeat(
        event_id="e1", user_id="u1", connection_id="c1", edge_id="edge-1", at=T0
    )

"""Lists of user ids in client input (services/protocol.py): the bulk query's body and `watch`/`unwatch` frames."""

from __future__ import annotations

import orjson
import pytest

from services.errors import ApiError
from services.policy import Policy
from services.protocol import (
    MAX_QUERY_BYTES,
    MAX_USER_ID_CHARS,
    MAX_USER_IDS,
    Limits,
    Unwatch,
    Watch,
    parse_frame,
    parse_query_body,
)

LIMITS = Limits(policy=Policy.load(""), max_bytes=64 * 1024, max_metadata_bytes=4 * 1024)


def test_a_query_keeps_the_ids_in_the_order_given() -> None:
    assert parse_query_body(b'{"user_ids": ["b", "a", "c"]}') == ("b", "a", "c")
    ids = [f"u{i}" for i in range(MAX_USER_IDS)]
    assert parse_query_body(orjson.dumps({"user_ids": ids})) == tuple(ids)
    assert parse_query_body(orjson.dumps({"user_ids": ["x" * MAX_USER_ID_CHARS]})) == ("x" * MAX_USER_ID_CHARS,)


@pytest.mark.parametrize(("body", "code"), [
    (b"[1", "request.malformed_json"),
    (b'"a"', "request.invalid"),
    (b"{}", "request.invalid"),
    (b'{"user_ids": ["a"], "more": true}', "request.invalid"),
    (b'{"user_ids": {"a": 1}}', "request.invalid"),
    (b'{"user_ids": []}', "request.invalid"),
    (b'{"user_ids": [null]}', "request.invalid"),
    (b'{"user_ids": [""]}', "request.invalid"),
    (orjson.dumps({"user_ids": ["x" * (MAX_USER_ID_CHARS + 1)]}), "request.invalid"),
    (b'{"user_ids": ["a", "a"]}', "request.invalid"),
    (orjson.dumps({"user_ids": [f"u{i}" for i in range(MAX_USER_IDS + 1)]}), "request.too_large"),
    (b'{"user_ids": ["a"]}' + b" " * MAX_QUERY_BYTES, "request.too_large"),
])
def test_a_bad_query_body_has_a_stable_code(body: bytes, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_query_body(body)
    assert caught.value.error.code == code


def test_watch_and_unwatch_frames() -> None:
    assert parse_frame('{"type": "watch", "users": ["a", "b"], "ref": 7}', LIMITS) == Watch(users=("a", "b"), ref=7)
    assert parse_frame('{"type": "unwatch", "users": ["a"]}', LIMITS) == Unwatch(users=("a",))
    for frame in ('{"type": "watch"}', '{"type": "watch", "users": []}', '{"type": "unwatch", "users": "a"}',
                  '{"type": "watch", "users": ["a"], "user_ids": ["b"]}'):
        with pytest.raises(ApiError) as caught:
            parse_frame(frame, LIMITS)
        assert caught.value.error.code == "request.invalid", frame

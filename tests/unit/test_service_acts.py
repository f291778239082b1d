"""Who may use which route (`Principal.require_service`, `require_user`), the body of a forced offline, and
the `auth` frame that re-authenticates a socket."""

from __future__ import annotations

import pytest

from services.auth import Principal
from services.errors import ApiError
from services.policy import Policy
from services.protocol import Auth, Limits, parse_frame
from services.service_acts import MAX_REASON_CHARS, _reason

USER = Principal(user_id="ada", channels=None)
SERVICE = Principal(user_id="", channels=None, service="backend")
LIMITS = Limits(policy=Policy.load(""), max_bytes=16 * 1024, max_metadata_bytes=4 * 1024)


def code(call: object) -> str:
    with pytest.raises(ApiError) as info:
        call()  # type: ignore[operator]
    return info.value.error.code


def test_service_routes_take_service_keys_and_user_routes_user_tokens() -> None:
    SERVICE.require_service()
    USER.require_user()
    assert code(USER.require_service) == "auth.service_only"
    assert code(SERVICE.require_user) == "auth.user_only"


@pytest.mark.parametrize(("body", "reason"), [(b"", None), (b"  \n", None), (b"{}", None),
                                              (b'{"reason": "suspended"}', "suspended")])
def test_a_forced_offline_takes_an_optional_reason(body: bytes, reason: str | None) -> None:
    assert _reason(body) == reason


@pytest.mark.parametrize(("body", "error"), [
    (b"{", "request.malformed_json"), (b"[]", "request.invalid"), (b'{"why": "x"}', "request.invalid"),
    (b'{"reason": ""}', "request.invalid"), (b'{"reason": 7}', "request.invalid"),
    (b'{"reason": null}', "request.invalid"),
    (('{"reason": "%s"}' % ("x" * (MAX_REASON_CHARS + 1))).encode(), "request.invalid"),
    (b'{"reason": "' + b"x" * 5000 + b'"}', "request.too_large"),
])
def test_a_bad_body_is_refused(body: bytes, error: str) -> None:
    assert code(lambda: _reason(body)) == error


def test_the_auth_frame_carries_a_token() -> None:
    assert parse_frame('{"type": "auth", "token": "t", "ref": 3}', LIMITS) == Auth(token="t", ref=3)
    for bad in ('{"type": "auth"}', '{"type": "auth", "token": ""}', '{"type": "auth", "token": 1}',
                '{"type": "auth", "token": "t", "sub": "eve"}'):
        assert code(lambda bad=bad: parse_frame(bad, LIMITS)) == "request.invalid"

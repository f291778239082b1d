"""Bad input gets a stable error code; nothing is written and the connection keeps working."""

from __future__ import annotations

import uuid

import httpx
import pytest
import websockets

from tests.integration.log import logged_events
from tests.integration.stack import SECRET, Stack


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "request.malformed_json"),
        ('["join"]', "request.invalid"),
        ('{"type": "dance"}', "request.unknown_type"),
        ('{"channel": "x"}', "request.invalid"),
        ('{"type": "join"}', "request.invalid"),
        ('{"type": "join", "channel": "x", "extra": 1}', "request.invalid"),
        ('{"type": "join", "channel": 7}', "channel.invalid_id"),
        ('{"type": "join", "channel": "a/b"}', "channel.invalid_id"),
        ('{"type": "leave", "channel": "never-joined"}', "channel.not_joined"),
        ('{"type": "update", "status": "sleeping"}', "presence.unknown_status"),
        ('{"type": "update", "status": 1}', "request.invalid"),
        ('{"type": "update"}', "request.invalid"),
        ('{"type": "update", "metadata": {"a": {"b": {"c": {"d": {"e": 1}}}}}}', "request.invalid"),
        ('{"type": "update", "metadata": {"blob": "' + "x" * 5000 + '"}}', "request.too_large"),
        ('{"type": "heartbeat", "pad": "' + "x" * 20000 + '"}', "request.too_large"),
        (b"\x00\x01binary", "request.binary_frame"),
    ],
)
async def test_bad_frames_get_a_code_and_the_socket_keeps_working(connect, frame: str | bytes, code: str) -> None:
    client = await connect(f"bad-{uuid.uuid4().hex[:6]}")
    before = len(client.frames)
    await client.send_raw(frame)
    error = await client.error(after=before)
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    snapshot = await client.join(f"after-error-{uuid.uuid4().hex[:6]}")
    assert snapshot["seq"] == 0


async def test_join_to_a_channel_the_token_forbids_writes_nothing(stack: Stack, connect) -> None:
    user_id = f"limited-{uuid.uuid4().hex[:6]}"
    client = await connect(user_id, ["team-*"])
    before = len(client.frames)
    await client.send(type="join", channel="secret-room")
    assert (await client.error(after=before))["code"] == "auth.channel_forbidden"
    allowed = await client.join("team-blue")
    assert allowed["channel"] == "team-blue"
    events = [e for e in await logged_events(stack.bootstrap) if e.user_id == user_id]
    channels = {getattr(e, "channel", None) for e in events} - {None}
    assert channels == {"team-blue"}


async def test_websocket_without_valid_token_is_refused_with_401(stack: Stack) -> None:
    for query in ("", "?token=not-a-jwt", f"?token={stack.token('u', ttl_s=-60)}"):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(stack.ws_url + query)
        assert refused.value.response.status_code == 401


@pytest.mark.parametrize(
    ("headers", "code", "status"),
    [
        ({}, "auth.missing_token", 401),
        ({"Authorization": "Bearer nope"}, "auth.invalid_token", 401),
    ],
)
async def test_rest_auth_errors(stack: Stack, headers: dict[str, str], code: str, status: int) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for answer in (await http.get("/realtime/channels/x/presence", headers=headers),
                       await http.post("/realtime/presence/update", json={"status": "away"}, headers=headers)):
            assert answer.status_code == status
            assert answer.json()["error"]["code"] == code


async def test_token_signed_with_another_secret_is_refused(stack: Stack) -> None:
    import jwt

    forged = jwt.encode({"sub": "mallory", "exp": 2**31}, "another-secret-" + SECRET, algorithm="HS256")
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get("/realtime/channels/x/presence", headers={"Authorization": f"Bearer {forged}"})
    assert answer.json()["error"]["code"] == "auth.invalid_token"


@pytest.mark.parametrize(
    ("body", "code", "status"),
    [
        (b"{oops", "request.malformed_json", 400),
        (b'{"status": "sleeping"}', "presence.unknown_status", 400),
        (b'{"status": "away", "user_id": "someone-else"}', "presence.forbidden_user", 403),
        (b'{"status": "away", "colour": "red"}', "request.invalid", 400),
        (b"{}", "request.invalid", 400),
        (b'{"status": "away", "metadata": ' + b'{"x": "' + b"y" * 20000 + b'"}}', "request.too_large", 413),
    ],
)
async def test_rest_update_rejects_bad_bodies(stack: Stack, body: bytes, code: str, status: int) -> None:
    user_id = f"rest-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.post(
            "/realtime/presence/update", content=body,
            headers={"Authorization": f"Bearer {stack.token(user_id)}", "Content-Type": "application/json"},
        )
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    written = [e for e in await logged_events(stack.bootstrap) if e.user_id == user_id]
    assert written == []


async def test_rest_read_of_a_forbidden_channel_is_403(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get(
            "/realtime/channels/secret/presence",
            headers={"Authorization": f"Bearer {stack.token('reader', ['public-*'])}"},
        )
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "auth.channel_forbidden")


async def test_unknown_route_and_method_have_codes(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        missing = await http.get("/nowhere")
        wrong = await http.delete("/realtime/presence/update")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "route.not_found")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (405, "route.method_not_allowed")


async def test_openapi_document_is_served(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        document = (await http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert {"/realtime/channels/{channel}/presence", "/realtime/presence/update"} <= document["paths"].keys()

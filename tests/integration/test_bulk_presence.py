"""Bulk presence against the real stack: `POST /realtime/presence/query` of up to 500 ids, its strict
body, and WebSocket `watch`/`unwatch` of a friends list with the pushes that follow."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from services.protocol import MAX_QUERY_BYTES, MAX_USER_ID_CHARS, MAX_USER_IDS
from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.stack import Stack, eventually
from tests.integration.test_read_permissions import token

PUSH_BOUND_S = 2.0  # a watched friend's change reaches the watcher within this


async def update(http: httpx.AsyncClient, user_id: str, **fields: object) -> None:
    """Through REST with wait=true: answered once this edge's read model holds the new view."""
    answer = await http.post("/realtime/presence/update", params={"wait": "true"}, json=fields,
                             headers={"Authorization": f"Bearer {token(user_id)}"})
    assert answer.status_code == 200, answer.text


async def test_a_query_of_500_ids_answers_the_readable_ones_and_lists_the_rest_alike(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    friends = [f"bulk-{tag}-friend-{i}" for i in range(3)]
    strangers = [f"bulk-{tag}-stranger-{i}" for i in range(2)]  # exist, but the reader may not read them
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        for user_id in friends + strangers:
            await update(http, user_id, metadata={"list": "bulk"})
        unknown = [f"bulk-{tag}-unknown-{i}" for i in range(MAX_USER_IDS - len(friends) - len(strangers))]
        asked = [*unknown[:100], friends[0], strangers[0], *unknown[100:], friends[2], strangers[1], friends[1]]
        assert len(asked) == MAX_USER_IDS
        reader = {"Authorization": f"Bearer {token(f'bulk-{tag}-reader', read_users=[f'bulk-{tag}-friend-*'])}"}
        answer = await http.post("/realtime/presence/query", json={"user_ids": asked}, headers=reader)
        too_many = await http.post("/realtime/presence/query", json={"user_ids": [*asked, "one-more"]},
                                   headers=reader)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [v["user_id"] for v in body["users"]] == [friends[0], friends[2], friends[1]]  # in the order asked
    assert all(v["metadata"] == {"list": "bulk"} and v["channels"] == [] for v in body["users"])
    assert body["not_found"] == [u for u in asked if u not in friends]  # strangers and unknown ids alike
    assert (too_many.status_code, too_many.json()["error"]["code"]) == (413, "request.too_large")


BAD_BODIES: list[tuple[str, bytes, int, str]] = [
    ("not json", b"{user_ids", 400, "request.malformed_json"),
    ("not an object", b'["a"]', 400, "request.invalid"),
    ("no user_ids", b"{}", 400, "request.invalid"),
    ("an unknown field", b'{"user_ids": ["a"], "limit": 3}', 400, "request.invalid"),
    ("not a list", b'{"user_ids": "a"}', 400, "request.invalid"),
    ("null", b'{"user_ids": null}', 400, "request.invalid"),
    ("empty", b'{"user_ids": []}', 400, "request.invalid"),
    ("a number among them", b'{"user_ids": ["a", 1]}', 400, "request.invalid"),
    ("an empty id", b'{"user_ids": [""]}', 400, "request.invalid"),
    ("an id too long", b'{"user_ids": ["' + b"x" * (MAX_USER_ID_CHARS + 1) + b'"]}', 400, "request.invalid"),
    ("an id twice", b'{"user_ids": ["a", "b", "a"]}', 400, "request.invalid"),
    ("too many ids", b'{"user_ids": [%s]}' % b",".join(b'"u%d"' % i for i in range(MAX_USER_IDS + 1)), 413,
     "request.too_large"),
    ("too many bytes", b'{"user_ids": ["a"]' + b" " * MAX_QUERY_BYTES + b"}", 413, "request.too_large"),
]


@pytest.mark.parametrize(("body", "status", "code"), [b[1:] for b in BAD_BODIES], ids=[b[0] for b in BAD_BODIES])
async def test_a_bad_query_body_is_refused_with_a_stable_code(stack: Stack, body: bytes, status: int,
                                                              code: str) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.post("/realtime/presence/query", content=body,
                                 headers={"Authorization": f"Bearer {token('bulk-bad')}",
                                          "Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


def user_frame(user_id: str, **fields: object) -> Any:
    return lambda f: f["type"] == "presence.user" and f["user"]["user_id"] == user_id and \
        fields.items() <= f["user"].items()


async def round_trip(client: Client, ref: str) -> int:
    """Everything the edge queued for the client before now has arrived once this returns (one outbox, in
    order); returns the number of frames then."""
    await client.send(type="watch", users=[f"nobody-{uuid.uuid4().hex}"], ref=ref)
    await client.next(lambda f: f["type"] == "presence.users" and f["ref"] == ref)
    return len(client.frames)


async def test_watch_pushes_a_friends_status_changes_until_unwatch(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    friend, other = f"watched-{tag}", f"unwatched-{tag}"
    watcher = Client(stack.ws_url, token(f"watcher-{tag}", read_users=[f"watched-{tag}", f"unwatched-{tag}"]))
    friend_socket = Client(stack.ws_url, token(friend))  # connected: its status shows (offline otherwise)
    for client in (watcher, friend_socket):
        await client.connect()
    async with heartbeating(watcher, friend_socket), httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        await update(http, friend, status="online")
        await update(http, other, metadata={"n": 1})
        await watcher.send(type="watch", users=[friend, f"nobody-{tag}"], ref=1)
        answer = await watcher.next(lambda f: f["type"] == "presence.users")
        assert (answer["ref"], [v["user_id"] for v in answer["users"]], answer["not_found"]) == \
            (1, [friend], [f"nobody-{tag}"])

        after, changed_at = len(watcher.frames), time.monotonic()
        await http.post("/realtime/presence/update", json={"status": "busy", "status_text": "in a call"},
                        headers={"Authorization": f"Bearer {token(friend)}"})
        pushed = await watcher.next(user_frame(friend, status="busy"), after=after, timeout_s=PUSH_BOUND_S)
        assert time.monotonic() - changed_at < PUSH_BOUND_S
        assert pushed == {"type": "presence.user", "user": {**pushed["user"], "status_text": "in a call"}}
        await update(http, other, metadata={"n": 2})  # not watched
        seen = await round_trip(watcher, "after-change")
        assert not [f for f in watcher.frames[after:seen] if f["type"] == "presence.user"
                    and f["user"]["user_id"] == other]

        await watcher.send(type="unwatch", users=[friend], ref="u")
        await watcher.next(lambda f: f == {"type": "ack", "ref": "u"}, after=seen)
        await update(http, friend, status="away")  # applied on this edge when it returns: any push is queued
        end = await round_trip(watcher, "after-unwatch")
    assert [f for f in watcher.frames[seen:end] if f["type"] in ("presence.user", "presence.user.gone")] == []
    for client in (watcher, friend_socket):
        await client.close()


async def test_a_user_that_leaves_the_shared_channel_stops_being_readable(stack: Stack, connect,
                                                                         channel: str) -> None:
    reader_id, subject_id = user("reader"), user("leaver")
    reader, subject = await connect(reader_id), await connect(subject_id)
    async with heartbeating(reader, subject), httpx.AsyncClient(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {stack.token(reader_id)}"}) as http:
        await reader.join(channel)
        await subject.join(channel)
        await reader.next(diff_with(channel, "joins", subject_id))
        url = f"/realtime/users/{subject_id}/presence"

        async def readable() -> bool:
            answer = await http.get(url)
            return answer.status_code == 200 and answer.json()["channels"] == [channel]

        await eventually(readable)
        await reader.send(type="watch", users=[subject_id], ref="w")
        watched = await reader.next(lambda f: f["type"] == "presence.users")
        assert [v["user_id"] for v in watched["users"]] == [subject_id]
        after = len(reader.frames)
        await subject.send(type="leave", channel=channel)
        await reader.next(lambda f: f == {"type": "presence.user.gone", "user_id": subject_id}, after=after)
        answer = await http.get(url)
        query = (await http.post("/realtime/presence/query", json={"user_ids": [subject_id]})).json()
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "user.not_found")
    assert query == {"users": [], "not_found": [subject_id]}
    await reader.send(type="watch", users=[subject_id], ref="again")
    again = await reader.next(lambda f: f["type"] == "presence.users" and f["ref"] == "again")
    assert (again["users"], again["not_found"]) == ([], [subject_id])


async def test_a_watcher_that_leaves_the_shared_channel_stops_reading_and_joining_again_reads(
        stack: Stack, connect, channel: str) -> None:
    reader_id, subject_id = user("reader"), user("stayer")
    reader, subject = await connect(reader_id), await connect(subject_id)
    async with heartbeating(reader, subject):
        await subject.join(channel)
        await reader.join(channel)
        await reader.send(type="watch", users=[subject_id], ref="w")

        async def shown() -> bool:  # the edge has folded both joins by the time a watch finds the subject
            after = len(reader.frames)
            await reader.send(type="watch", users=[subject_id], ref="again")
            answer = await reader.next(lambda f: f["type"] == "presence.users" and f["ref"] == "again", after=after)
            return bool(answer["users"])

        await eventually(shown)
        after = len(reader.frames)
        await reader.send(type="leave", channel=channel)
        await reader.next(lambda f: f == {"type": "presence.user.gone", "user_id": subject_id}, after=after)
        after = len(reader.frames)
        await reader.send(type="join", channel=channel)
        back = await reader.next(user_frame(subject_id), after=after)
    assert back["user"]["channels"] == [channel]


async def test_a_watched_user_that_is_erased_is_reported_gone(stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    erased = f"erased-{tag}"
    watcher = Client(stack.ws_url, token(f"watcher-{tag}", read_users=[erased]))
    await watcher.connect()
    async with heartbeating(watcher), httpx.AsyncClient(
            base_url=stack.base_url, headers={"Authorization": f"Bearer {token(erased)}"}, timeout=30) as http:
        await update(http, erased, metadata={"name": "Erin"})
        await watcher.send(type="watch", users=[erased], ref="w")
        watched = await watcher.next(lambda f: f["type"] == "presence.users")
        assert [v["metadata"] for v in watched["users"]] == [{"name": "Erin"}]
        answer = await http.delete(f"/realtime/users/{erased}/presence")
        assert answer.status_code == 200, answer.text
        await watcher.next(lambda f: f == {"type": "presence.user.gone", "user_id": erased})
    await watcher.close()


async def test_a_connection_watches_at_most_500_users(stack: Stack, connect) -> None:
    client = await connect(user("many"))
    ids = [f"w{i}-{uuid.uuid4().hex[:4]}" for i in range(MAX_USER_IDS)]
    await client.send(type="watch", users=ids[:300], ref=1)
    await client.send(type="watch", users=ids[250:], ref=2)  # overlapping ids count once: 500 in all
    second = await client.next(lambda f: f["type"] == "presence.users" and f["ref"] == 2)
    assert len(second["not_found"]) == 250
    after = len(client.frames)
    await client.send(type="watch", users=["one-more"], ref=3)
    error = await client.error(after)
    assert (error["code"], error["retriable"]) == ("limit.watched_users", False)
    await client.send(type="unwatch", users=ids[:1], ref=4)
    await client.send(type="watch", users=["one-more"], ref=5)
    await client.next(lambda f: f["type"] == "presence.users" and f["ref"] == 5)


async def test_watch_frames_are_strict(stack: Stack, connect) -> None:
    client = await connect(user("strict"))
    bad: list[dict[str, Any]] = [
        {"type": "watch"}, {"type": "watch", "users": []}, {"type": "watch", "users": "a"},
        {"type": "watch", "users": ["a", "a"]}, {"type": "watch", "users": ["a"], "channel": "x"},
        {"type": "unwatch", "users": [1]},
    ]
    for frame in bad:
        after = len(client.frames)
        await client.send(**frame)
        assert (await client.error(after))["code"] == "request.invalid", frame
    after = len(client.frames)
    await client.send(type="watch", users=[f"u{i}" for i in range(MAX_USER_IDS + 1)])
    assert (await client.error(after))["code"] == "request.too_large"

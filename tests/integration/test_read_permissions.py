"""Who may read whom, against the real stack: every kind of reader against every read, from one table.

The subject is present in two channels, `shared` and `side`; a stranger is present in a third,
`other`. The readers: the subject itself; a user present in `shared`; the stranger; a user named
by its token's `read_users` glob, present nowhere; a service key; and a user whose token allows
`shared` only, present in it. `MATRIX` says what each reader gets of each read; docs/api.md shows
the same table (`render` writes it; the last test checks the two agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with
from tests.integration.stack import ROOT, SECRET, Stack, eventually

READERS = ("itself", "sharer", "stranger", "read_users", "service", "restricted")
READS = ("user view", "bulk query", "watch", "channel shared", "channel side", "channels list")
HEADINGS = {"user view": "`GET` its view", "bulk query": "bulk query", "watch": "`watch`",
            "channel shared": "`GET` presence of `shared`", "channel side": "`GET` presence of `side`",
            "channels list": "`GET /realtime/channels` lists"}
NOT_FOUND, FORBIDDEN = "404 `user.not_found`", "403 `auth.channel_forbidden`"
IN_USERS, IN_NOT_FOUND = "in `users`", "in `not_found`"
BOTH = "200, `channels`: shared, side"
ALL = "other, shared, side"  # by channel id
# reader -> read -> what it gets
MATRIX: dict[str, dict[str, str]] = {
    "itself": {"user view": BOTH, "bulk query": IN_USERS, "watch": IN_USERS,
               "channel shared": "200", "channel side": "200", "channels list": ALL},
    "sharer": {"user view": BOTH, "bulk query": IN_USERS, "watch": IN_USERS,
               "channel shared": "200", "channel side": "200", "channels list": ALL},
    "stranger": {"user view": NOT_FOUND, "bulk query": IN_NOT_FOUND, "watch": IN_NOT_FOUND,
                 "channel shared": "200", "channel side": "200", "channels list": ALL},
    "read_users": {"user view": BOTH, "bulk query": IN_USERS, "watch": IN_USERS,
                   "channel shared": "200", "channel side": "200", "channels list": ALL},
    "service": {"user view": BOTH, "bulk query": IN_USERS, "watch": IN_USERS,
                "channel shared": "200", "channel side": "200", "channels list": ALL},
    "restricted": {"user view": "200, `channels`: shared", "bulk query": IN_USERS, "watch": IN_USERS,
                   "channel shared": "200", "channel side": FORBIDDEN, "channels list": "shared"},
}
DESCRIBED = {
    "itself": "the subject itself",
    "sharer": "a user present in `shared` with it",
    "stranger": "a user present only in `other`: no channel in common",
    "read_users": "a user whose token's `read_users` glob matches it, present nowhere",
    "service": "a service key",
    "restricted": "a user present in `shared` whose token's `channels` allow `shared` only",
}


def render() -> str:
    """The table as docs/api.md shows it."""
    lines = ["| Reader | " + " | ".join(HEADINGS[read] for read in READS) + " |", "|---" * (len(READS) + 1) + "|"]
    for reader in READERS:
        lines.append(f"| {DESCRIBED[reader]} | " + " | ".join(MATRIX[reader][read] for read in READS) + " |")
    return "\n".join(lines)


def token(user_id: str, channels: list[str] | None = None, read_users: list[str] | None = None) -> str:
    claims: dict[str, Any] = {"sub": user_id, "exp": int(time.time()) + 3600}
    if channels is not None:
        claims["channels"] = channels
    if read_users is not None:
        claims["read_users"] = read_users
    return jwt.encode(claims, SECRET, algorithm="HS256")


@dataclass
class World:
    subject: str
    shared: str
    side: str
    other: str
    tokens: dict[str, str]  # reader -> credential


@pytest.fixture(scope="module")
async def world(stack: Stack) -> AsyncIterator[World]:
    tag = uuid.uuid4().hex[:6]
    subject = f"subject-{tag}"
    shared, side, other = f"shared-{tag}", f"side-{tag}", f"other-{tag}"
    tokens = {
        "itself": token(subject),
        "sharer": token(f"sharer-{tag}"),
        "stranger": token(f"stranger-{tag}"),
        "read_users": token(f"friend-{tag}", read_users=["nobody", "subject-*"]),
        "service": stack.service_key(),
        "restricted": token(f"restricted-{tag}", channels=[shared]),
    }
    present = [(tokens["itself"], [shared, side]), (tokens["sharer"], [shared]), (tokens["stranger"], [other]),
               (tokens["restricted"], [shared])]
    clients = [Client(stack.ws_url, t) for t, _ in present]
    for client in clients:
        await client.connect()
    async with heartbeating(*clients):
        for client, (_, channels) in zip(clients, present, strict=True):
            for channel in channels:
                await client.join(channel)
        await clients[1].next(diff_with(shared, "joins", f"restricted-{tag}"), timeout_s=15)
        async with httpx.AsyncClient(base_url=stack.base_url,
                                     headers={"Authorization": f"Bearer {stack.service_key()}"}) as http:
            async def settled() -> bool:  # the edge's index holds every membership
                views = (await http.post("/realtime/presence/query", json={"user_ids": [
                    subject, f"sharer-{tag}", f"stranger-{tag}", f"restricted-{tag}"]})).json()["users"]
                return [v["channels"] for v in views] == [[shared, side], [shared], [other], [shared]]

            await eventually(settled, timeout_s=15)
        yield World(subject, shared, side, other, tokens)
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()


async def read(stack: Stack, world: World, reader: str, what: str) -> str:
    """What `reader` gets of `what`, in the words of MATRIX."""
    credential = world.tokens[reader]
    names = {world.shared: "shared", world.side: "side", world.other: "other"}
    async with httpx.AsyncClient(base_url=stack.base_url, headers={"Authorization": f"Bearer {credential}"}) as http:
        if what == "user view":
            answer = await http.get(f"/realtime/users/{world.subject}/presence")
            if answer.status_code == 404:
                assert answer.json()["error"]["code"] == "user.not_found"
                return NOT_FOUND
            assert answer.status_code == 200, answer.text
            return f"200, `channels`: {', '.join(names[c] for c in answer.json()['channels'])}"
        if what == "bulk query":
            unknown = f"unknown-{uuid.uuid4().hex[:6]}"
            body = (await http.post("/realtime/presence/query", json={"user_ids": [unknown, world.subject]})).json()
            assert unknown in body["not_found"] and unknown not in [v["user_id"] for v in body["users"]]
            if [v["user_id"] for v in body["users"]] == [world.subject]:
                return IN_USERS
            assert world.subject in body["not_found"]
            return IN_NOT_FOUND
        if what.startswith("channel "):
            channel = world.shared if what == "channel shared" else world.side
            answer = await http.get(f"/realtime/channels/{channel}/presence")
            if answer.status_code == 403:
                assert answer.json()["error"]["code"] == "auth.channel_forbidden"
                return FORBIDDEN
            assert answer.status_code == 200 and world.subject in [m["user_id"] for m in answer.json()["members"]]
            return "200"
        if what == "channels list":
            listed = [c["channel"] for c in await all_channels(http)]
            return ", ".join(names[c] for c in listed if c in names)
    watcher = Client(stack.ws_url, credential)
    await watcher.connect()
    try:
        await watcher.send(type="watch", users=[world.subject], ref="w")
        answer = await watcher.next(lambda f: f["type"] == "presence.users")
    finally:
        await watcher.close()
    assert answer["ref"] == "w"
    if answer["not_found"] == [world.subject] and answer["users"] == []:
        return IN_NOT_FOUND
    assert [v["user_id"] for v in answer["users"]] == [world.subject] and answer["not_found"] == []
    return IN_USERS


async def all_channels(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    channels, cursor = [], None
    while True:
        page = (await http.get("/realtime/channels", params={"limit": 1000, **({"cursor": cursor} if cursor else {})}))
        assert page.status_code == 200, page.text
        channels += page.json()["channels"]
        if (cursor := page.json()["next_cursor"]) is None:
            return channels


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("what", READS)
async def test_who_may_read_whom(stack: Stack, world: World, reader: str, what: str) -> None:
    assert await read(stack, world, reader, what) == MATRIX[reader][what]


async def test_the_channels_list_pages_by_channel_id(stack: Stack, world: World) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {stack.service_key()}"}) as http:
        every = await all_channels(http)
        paged, cursor = [], None
        while True:
            page = (await http.get("/realtime/channels", params={"limit": 2, **({"cursor": cursor} if cursor else {})}))
            assert len(page.json()["channels"]) <= 2
            paged += page.json()["channels"]
            if (cursor := page.json()["next_cursor"]) is None:
                break
        bad = await http.get("/realtime/channels", params={"limit": 1001})
    ids = [c["channel"] for c in paged]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    mine = {c["channel"]: c for c in paged if c["channel"] in (world.shared, world.side, world.other)}
    assert {c: (v["occupancy"], v["typing"]) for c, v in mine.items()} == {
        world.shared: (3, []), world.side: (1, []), world.other: (1, [])}
    assert all(c["occupancy"] >= 1 and c["seq"] > 0 for c in every)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "request.invalid")


async def test_no_token_reads_nothing(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answers = await asyncio.gather(http.get("/realtime/channels"),
                                       http.post("/realtime/presence/query", json={"user_ids": ["a"]}))
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(401, "auth.missing_token")] * 2


def test_docs_show_the_matrix_the_tests_check() -> None:
    assert render() in Path(ROOT, "docs/api.md").read_text()

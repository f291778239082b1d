"""WebSocket fuzz (issue #5): hostile connections cannot crash the edge, taint the log or disturb others.

While a member (joined to one channel, subscribed to another), a peer and an observer keep working,
attacker connections send a bounded, seeded stream of hostile frames (tests/integration/hostile.py),
one case at a time, each followed by a barrier frame so that every answer is matched to its frame.
Each frame must get what the documented protocol says (`hostile.Oracle`): an error with a catalogued
code, the answer of a valid request, or a documented close. Flooding connections must be cut off with
`limit.abuse` and 1008; hostile handshakes must be refused with their documented status.

Afterwards every record on every topic validates against schemas/json (except the poison records
other tests wrote on purpose, which the processor had set aside as dead letters before the fuzz), no
record holds a forged id or a user id that no valid token carried, and the events of every fuzz
connection are exactly those its accepted frames asked for.

Sized by PRESENCE_FUZZ_FRAMES (hostile frames, default 1000), PRESENCE_FUZZ_SECONDS (time bound of
the attack, 120), PRESENCE_FUZZ_SEED (5) and PRESENCE_FUZZ_CONNECTIONS (attackers, 6); `make fuzz`
runs it large.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import orjson
import pytest
import websockets
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from schemas import topics
from schemas.errors import ERRORS
from schemas.events import Event
from tests.integration.client import Client
from tests.integration.frames import diff_with
from tests.integration.hostile import Case, Conn, Expect, Fragments, Hostile, Item, Oracle, RawText, drawn_frames
from tests.integration.log import logged_events, read_all
from tests.integration.stack import MAX_CHANNELS, SECRET, Stack, eventually
from tests.unit.test_json_schemas import FILES, TOPIC_SCHEMAS, validator

FRAMES = int(os.environ.get("PRESENCE_FUZZ_FRAMES", "1000"))
SECONDS = float(os.environ.get("PRESENCE_FUZZ_SECONDS", "120"))
SEED = int(os.environ.get("PRESENCE_FUZZ_SEED", "5"))
CONNECTIONS = int(os.environ.get("PRESENCE_FUZZ_CONNECTIONS", "6"))

BOUND_S = 5.0  # a legitimate client's ack, and its channel's update, arrive within this
FLOOD_SHARE = 0.1  # of the hostile frames go to floods, which must end in limit.abuse and 1008
DRAWN_SHARE = 0.1  # of the hostile frames are drawn by hypothesis
RATE, BURST = 16.0, 30.0  # attackers pace themselves below the edge's limit (20/s, bursts of 40)
ANSWERS = {"error", "ack", "presence.snapshot", "presence.resumed"}  # replies to a frame, not pushed views
COMPARED = {"channel.joined", "channel.left", "typing.started", "typing.stopped", "presence.updated"}
POLICY_FILE = Path(__file__).with_name("policy.json")  # the stack's policy file
USER_KEYED = {topics.EVENTS.name, topics.CHANGES.name, topics.USERS.name, topics.USERS_CHANGELOG}
DELETE_POLICY = {spec.name for spec in topics.ALL if spec.cleanup_policy == "delete"}

pytestmark = pytest.mark.timeout(SECONDS + 300)


@dataclass
class Run:
    """One fuzz run: names, the oracle, and what was sent, seen and predicted."""

    stack: Stack
    oracle: Oracle
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    failures: list[str] = field(default_factory=list)
    frames: Counter[str] = field(default_factory=Counter)  # hostile frames sent, by kind
    codes: Counter[str] = field(default_factory=Counter)  # error codes received
    closes: Counter[int] = field(default_factory=Counter)  # close codes of hostile-closed sockets
    handshakes: Counter[int] = field(default_factory=Counter)  # refused hostile handshakes, by status
    owners: dict[str, str] = field(default_factory=dict)  # connection id -> user id, from `welcome`
    writes: dict[str, list[tuple[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    latencies: list[float] = field(default_factory=list)
    resets: int = 0  # 1009 closes the client saw as a reset (1006)
    edge_id: str = ""
    deadline: float = 0.0

    @property
    def never(self) -> str:  # in every forged id and refused user: must never reach the log
        return f"nvr{self.tag}"

    @property
    def own(self) -> list[str]:
        return [f"fz-atk-{self.tag}-{i}" for i in range(24)]

    @property
    def pattern(self) -> str:  # the attackers' `channels` claim
        return f"fz-atk-{self.tag}-*"

    @property
    def barrier(self) -> str:
        return f"fz-atk-{self.tag}-barrier"

    @property
    def room(self) -> str:  # the member's channel, observed by the observer
        return f"fz-room-{self.tag}"

    @property
    def side(self) -> str:  # the peer's channel, observed by the member
        return f"fz-side-{self.tag}"

    def user(self, role: str) -> str:
        return f"fz-{role}-{self.tag}"

    def fail(self, what: str) -> None:
        self.failures.append(what[:1500])

    def welcome(self, client: Client, frame: dict[str, Any]) -> str:
        self.owners[frame["connection_id"]] = client.user_id
        self.writes.setdefault(frame["connection_id"], [])
        self.edge_id = frame["edge_id"]
        return frame["connection_id"]


class Pacer:
    """A client-side token bucket, slower than the edge's, so that paced frames never hit limit.rate."""

    def __init__(self) -> None:
        self.tokens, self.stamp = BURST, time.monotonic()

    async def take(self, n: int) -> None:
        while True:
            now = time.monotonic()
            self.tokens, self.stamp = min(BURST, self.tokens + (now - self.stamp) * RATE), now
            if self.tokens >= n:
                self.tokens -= n
                return
            await asyncio.sleep((n - self.tokens) / RATE)


async def send(client: Client, item: Item) -> None:
    if isinstance(item, RawText):
        await client._ws.send(item.payload, text=True)
    elif isinstance(item, Fragments):
        await client._ws.send(list(item.parts))
    else:
        await client._ws.send(item)


async def closed_with(client: Client, timeout_s: float = 10) -> int | None:
    assert client._reader is not None
    try:
        await asyncio.wait_for(asyncio.shield(client._reader), timeout_s)
    except TimeoutError:
        return None
    return client._ws.close_code


def is_answer(frame: dict[str, Any]) -> bool:
    """A reply to a frame; snapshots without `ref` are left out, as the edge also pushes those unasked."""
    return frame["type"] in ANSWERS and (frame["type"] != "presence.snapshot" or "ref" in frame)


def check_error(frame: dict[str, Any], codes: frozenset[str]) -> str | None:
    if frame["type"] != "error" or frame.get("code") not in codes:
        return f"expected an error in {sorted(codes)}, got {frame}"
    catalogued = ERRORS[frame["code"]]
    if frame.get("retriable") is not catalogued.retriable or not isinstance(frame.get("message"), str):
        return f"error frame does not follow the catalogue: {frame}"
    return None


def match(expects: list[Expect], answers: list[dict[str, Any]]) -> tuple[str | None, list[str]]:
    """Pairs each frame's expectation with the answers, in order; (problem, event ids of acked updates)."""
    pending, event_ids = list(answers), []
    for expect in expects:
        if not expect.error and not expect.answer:
            continue
        if expect.answer == "snapshot" and expect.ref is None and not (
            pending and pending[0]["type"] == "presence.resumed" and pending[0].get("channel") == expect.channel
        ):
            continue  # a snapshot without `ref` cannot be told from one the edge pushes by itself
        if not pending:
            return f"no answer; expected {expect}", event_ids
        got = pending.pop(0)
        if expect.error:
            problem = check_error(got, expect.codes)
        elif got["type"] not in (("presence.snapshot", "presence.resumed") if expect.answer == "snapshot" else
                                 ("ack",)) or got.get("ref") != expect.ref:
            problem = f"expected a {expect.answer} with ref {expect.ref!r}, got {str(got)[:300]}"
        elif expect.channel is not None and got.get("channel") != expect.channel:
            problem = f"answer for the wrong channel: {str(got)[:300]}, expected {expect.channel}"
        else:
            problem = None
            if expect.writes and expect.writes[0][0] == "presence.updated":
                event_ids.append(got.get("event_id", ""))
        if problem:
            return problem, event_ids
    if pending:
        return f"answers nothing asked for: {str(pending)[:300]}", event_ids
    return None, event_ids


class Attacker:
    """One attacker connection: plays cases, checks each answer against the oracle, reconnects when cut."""

    def __init__(self, run: Run, user: str, hostile: Hostile, budget: int) -> None:
        self.run, self.user, self.hostile, self.budget = run, user, hostile, budget
        self.pacer = Pacer()
        self.sent = self.barriers = 0
        self.client: Client | None = None
        self.connection = ""
        self.conn = Conn(allowed=(run.pattern,))

    async def open(self) -> None:
        self.client = Client(self.run.stack.ws_url, self.run.stack.token(self.user, [self.run.pattern]))
        self.connection = self.run.welcome(self.client, await self.client.connect())
        self.conn = Conn(allowed=(self.run.pattern,))
        await self.pacer.take(1)
        problem = await self._barrier(len(self.client.frames), [])
        if problem:
            raise AssertionError(f"the barrier subscription failed: {problem}")
        self.conn.observing.add(self.run.barrier)

    async def reopen(self) -> None:
        assert self.client is not None
        if self.client._ws.state.name == "OPEN":
            await self.client.close()
        await self.open()

    async def attack(self) -> None:
        await self.open()
        while self.sent < self.budget and time.monotonic() < self.run.deadline:
            await self.play(self.hostile.case())
        assert self.client is not None
        if self.client._ws.state.name == "OPEN":
            await self.client.close()

    async def play(self, case: Case) -> None:
        assert self.client is not None
        state, expects = self.conn.copy(), []
        for item in case.items:
            expect = self.run.oracle.expect(item, state)
            state.apply(expect.op)
            expects.append(expect)
            assert self.run.never not in repr(expect.writes), f"the generator would log a forged id: {case}"
        await self.pacer.take(len(case.items) + 1)
        start = len(self.client.frames)
        closing = expects[-1].close
        try:
            for item in case.items:
                await send(self.client, item)
        except websockets.ConnectionClosed:
            if closing is None:
                self.run.fail(f"{case.kind}: the socket closed while sending {_show(case)}")
        self.sent += len(case.items)
        self.run.frames[case.kind] += len(case.items)
        if closing is not None:
            code = await closed_with(self.client)
            answers = [f for f in self.client.frames[start:] if is_answer(f)]
            if code == 1006 and closing == 1009:  # uvicorn drops the connection right after its 1009 (docs/api.md)
                code, self.run.resets = 1009, self.run.resets + 1
            self.run.closes[code or 0] += 1
            if code != closing or answers:
                self.run.fail(f"{case.kind}: expected close {closing}, got {code} after {answers}: {_show(case)}")
            await self.open()
            return
        problem = await self._barrier(start, expects)
        if problem:
            self.run.fail(f"{case.kind}: {problem}; case {_show(case)}")
            await self.reopen()
            return
        self.conn = state

    async def _barrier(self, start: int, expects: list[Expect]) -> str | None:
        """Subscribes to the barrier channel; what came in before its snapshot answers the case."""
        assert self.client is not None
        ref = f"barrier-{self.barriers}"
        self.barriers += 1
        try:
            await self.client.send(type="subscribe", channel=self.run.barrier, ref=ref)
            barrier = await self.client.next(
                lambda f: f["type"] == "presence.snapshot" and f.get("ref") == ref, after=start, timeout_s=15
            )
        except (TimeoutError, websockets.ConnectionClosed):
            return f"no answer to the barrier (socket closed with {self.client._ws.close_code})"
        frames = self.client.frames
        end = next(i for i in range(start, len(frames)) if frames[i] is barrier)
        answers = [f for f in frames[start:end] if is_answer(f)]
        for answer in answers:
            if answer["type"] == "error":
                self.run.codes[answer["code"]] += 1
        problem, event_ids = match(expects, answers)
        if problem is None:
            ids = iter(event_ids)
            for expect in expects:
                for kind, what in expect.writes:
                    written = {**what, "event_id": next(ids)} if kind == "presence.updated" else what
                    self.run.writes[self.connection].append((kind, written))
        return problem


async def flood(run: Run, hostile: Hostile, budget: int) -> None:
    """Connections that send invalid frames as fast as they can: each frame gets its own error until
    the rate limit drops them (`limit.rate`), then `limit.abuse` and the socket is closed with 1008."""
    user = run.user("flood")
    kinds = {k: 1 for k in ("malformed", "truncated", "binary", "wrong_type", "unknown_field", "unknown_type",
                            "forged", "foreign_channel", "bad_channel_id", "numbers", "status")}
    sent = 0
    while sent < budget and time.monotonic() < run.deadline:
        client = Client(run.stack.ws_url, run.stack.token(user, [run.pattern]))
        run.welcome(client, await client.connect())
        junk: list[tuple[Item, Expect]] = []
        while len(junk) < 150:
            for item in hostile.case(kinds).items:
                expect = run.oracle.expect(item, Conn(allowed=(run.pattern,)))
                if expect.error and isinstance(item, str | bytes) and len(item) < 4000:
                    junk.append((item, expect))
        count = 0
        try:
            for item, _ in junk:
                await send(client, item)
                count += 1
        except websockets.ConnectionClosed:
            pass
        sent += count
        run.frames["flood"] += count
        code = await closed_with(client)
        run.closes[code or 0] += 1
        errors = [f for f in client.frames if f["type"] == "error"]
        others = [f for f in client.frames if f["type"] not in ("error", "welcome")]
        for frame in errors:
            run.codes[frame["code"]] += 1
        problems = [check_error(f, junk[i][1].codes | {"limit.rate"}) for i, f in enumerate(errors[:-1])]
        if code != 1008 or not errors or errors[-1]["code"] != "limit.abuse" or any(problems) or others:
            problems = [p for p in problems if p][:3]
            run.fail(f"flood: close {code}, last {errors[-1:]}, problems {problems}, unexpected {others[:2]}")
        elif not any(f["code"] == "limit.rate" for f in errors):
            run.fail("flood: no limit.rate before limit.abuse")
        await asyncio.sleep(0.5)


@dataclass
class Legit:
    """The clients the attack must not disturb: a member, a peer in the member's other channel, an observer."""

    run: Run
    member: Client
    peer: Client
    observer: Client
    rounds: int = 0

    @classmethod
    async def start(cls, run: Run, stop: asyncio.Event) -> tuple[Legit, asyncio.Task[None]]:
        clients = [Client(run.stack.ws_url, run.stack.token(run.user(role))) for role in ("member", "peer", "observer")]
        for client in clients:
            run.welcome(client, await client.connect())
        legit = cls(run, *clients)
        beating = asyncio.create_task(legit.heartbeats(stop))  # the stack's timeout is 3 s
        await legit.member.join(run.room)
        await legit.peer.join(run.side)
        for client, channel in ((legit.member, run.side), (legit.observer, run.room)):
            await client.send(type="subscribe", channel=channel, ref="watch")
            await client.next(lambda f, c=channel: f["type"] == "presence.snapshot" and f["channel"] == c)
        await eventually(lambda: legit.member.user_id in legit.observer.members(run.room))
        await eventually(lambda: legit.peer.user_id in legit.member.members(run.side))
        for client, channel in ((legit.member, run.room), (legit.peer, run.side)):
            run.writes[connection_of(client)].append(("channel.joined", channel))
        return legit, beating

    async def heartbeats(self, stop: asyncio.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            for client in (self.member, self.peer, self.observer):
                try:
                    await client.send(type="heartbeat")
                except websockets.ConnectionClosed:
                    self.run.fail(f"legit: the socket of {client.user_id} closed ({client._ws.close_code})")
                    return
            await asyncio.sleep(0.5)
            if time.monotonic() - last > 2.0:  # the stack times connections out after 3 s of silence
                self.run.fail(f"legit: the test itself stalled for {time.monotonic() - last:.1f} s")
            last = time.monotonic()

    async def work(self, stop: asyncio.Event) -> None:
        """Each round the member and the peer update their status text: acked, and seen by the others."""
        while not stop.is_set():
            self.rounds += 1
            for client, channel, watchers in ((self.member, self.run.room, (self.observer, self.member)),
                                              (self.peer, self.run.side, (self.member,))):
                await self._update(client, channel, watchers, f"round {self.rounds}")
            await asyncio.sleep(0.5)

    async def _update(self, client: Client, channel: str, watchers: tuple[Client, ...], text: str) -> None:
        began = time.monotonic()
        marks = [len(w.frames) for w in watchers]
        mark, ref = len(client.frames), f"{text} of {client.user_id}"
        step = "not acknowledged"
        try:
            await client.send(type="update", status_text=text, ref=ref)
            ack = await client.next(lambda f: f["type"] == "ack" and f.get("ref") == ref, after=mark,
                                    timeout_s=BOUND_S)
            self.run.writes[connection_of(client)].append(("presence.updated", {
                "status": None, "status_text": text, "status_emoji": None, "metadata": None, "status_metadata": None,
                "visible": True, "event_id": ack["event_id"],
            }))
            for watcher, seen_from in zip(watchers, marks, strict=True):
                step = f"not seen by {watcher.user_id}"
                left = BOUND_S - (time.monotonic() - began)
                await watcher.next(diff_with(channel, "updates", client.user_id, status_text=text), after=seen_from,
                                   timeout_s=max(left, 0.01))
        except TimeoutError:
            self.run.fail(f"legit: the update {text} of {client.user_id} {step} within {BOUND_S} s")
        self.run.latencies.append(time.monotonic() - began)

    def check(self) -> None:
        run = self.run
        for client, channel, members in ((self.member, run.room, {self.member.user_id}),
                                         (self.observer, run.room, {self.member.user_id}),
                                         (self.member, run.side, {self.peer.user_id})):
            if set(client.members(channel)) != members:
                run.fail(f"legit: {client.user_id} sees {sorted(client.members(channel))} in {channel}")
        for client in (self.member, self.peer, self.observer):
            errors = [f for f in client.frames if f["type"] == "error"]
            if errors or client._ws.state.name != "OPEN":
                run.fail(f"legit: {client.user_id} got {errors[:3]}, socket {client._ws.state.name}")


def connection_of(client: Client) -> str:
    return next(f["connection_id"] for f in client.frames if f["type"] == "welcome")


async def health(run: Run, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=run.stack.base_url, timeout=BOUND_S) as http:
        while not stop.is_set():
            try:
                answer = await http.get("/healthz")
                if answer.status_code != 200 or answer.json() != {"status": "ok"}:
                    run.fail(f"/healthz answered {answer.status_code} {answer.text[:200]}")
            except httpx.HTTPError as exc:
                run.fail(f"/healthz did not answer: {exc!r}")
            await asyncio.sleep(0.5)


async def hostile_handshakes(run: Run, victim: str) -> None:
    """Forged, expired and malformed tokens, a foreign origin, bad `device` and `metadata`: all refused."""
    now = int(time.time())
    never = run.never

    def token(claims: dict[str, Any], key: str = SECRET, algorithm: str = "HS256") -> str:
        return jwt.encode(claims, key, algorithm=algorithm)

    def valid(i: int) -> str:
        return run.stack.token(f"{never}-hs-{i}")

    deep = "[" * 300 + "]" * 300
    attempts: list[tuple[dict[str, str], dict[str, str], str | None, int, str]] = [
        ({"token": token({"sub": victim, "exp": now + 600}, "another-" + SECRET)}, {}, None, 401, "auth.invalid_token"),
        ({"token": token({"sub": victim, "exp": now + 600}, SECRET * 2, "HS512")}, {}, None, 401, "auth.invalid_token"),
        ({"token": jwt.encode({"sub": victim, "exp": now + 600}, None, algorithm="none")}, {}, None, 401,
         "auth.invalid_token"),
        ({"token": token({"sub": f"{never}-expired", "exp": now - 60})}, {}, None, 401, "auth.invalid_token"),
        ({"token": token({"sub": f"{never}-nbf", "exp": now + 600, "nbf": now + 600})}, {}, None, 401,
         "auth.invalid_token"),
        ({"token": token({"exp": now + 600})}, {}, None, 401, "auth.invalid_token"),
        ({"token": token({"sub": "", "exp": now + 600})}, {}, None, 401, "auth.invalid_token"),
        ({"token": token({"sub": 7, "exp": now + 600})}, {}, None, 401, "auth.invalid_token"),
        ({"token": token({"sub": f"{never}-ch", "exp": now + 600, "channels": "fz-*"})}, {}, None, 401,
         "auth.invalid_token"),
        ({"token": token({"sub": f"{never}-ch2", "exp": now + 600, "channels": [1]})}, {}, None, 401,
         "auth.invalid_token"),
        ({"token": "not.a.jwt"}, {}, None, 401, "auth.invalid_token"),
        ({}, {}, None, 401, "auth.missing_token"),
        ({"token": ""}, {"Authorization": "Bearer "}, None, 401, "auth.missing_token"),
        ({}, {"Authorization": f"Bearer {never}"}, None, 401, "auth.invalid_token"),
        ({"token": valid(1)}, {}, "https://evil.example", 403, "auth.origin_forbidden"),
        ({"token": valid(2), "device": "a b"}, {}, None, 400, "request.invalid"),
        ({"token": valid(3), "device": "x" * 33}, {}, None, 400, "request.invalid"),
        ({"token": valid(4), "device": ""}, {}, None, 400, "request.invalid"),
        ({"token": valid(5), "metadata": "{"}, {}, None, 400, "request.malformed_json"),
        ({"token": valid(6), "metadata": "[]"}, {}, None, 400, "request.invalid"),
        ({"token": valid(7), "metadata": '{"a":{"b":{"c":{"d":{"e":1}}}}}'}, {}, None, 400, "request.invalid"),
        ({"token": valid(8), "metadata": '{"x":' + deep + "}"}, {}, None, 400, "request.invalid"),
        ({"token": valid(9), "metadata": orjson.dumps({f"k{i}": i for i in range(65)}).decode()}, {}, None, 400,
         "request.invalid"),
        ({"token": valid(10), "metadata": '{"a":1e400}'}, {}, None, 400, "request.malformed_json"),
        ({"token": valid(11), "metadata": '{"blob":"' + "b" * 5000 + '"}'}, {}, None, 413, "request.too_large"),
        ({"token": valid(12), "metadata": "[" * 1100 + "]" * 1100}, {}, None, 400, "request.malformed_json"),
    ]
    for query, headers, origin, status, code in attempts:
        url = f"{run.stack.ws_url}?{urlencode(query)}" if query else run.stack.ws_url
        try:
            socket = await websockets.connect(url, additional_headers=headers, origin=origin)  # type: ignore[arg-type]
        except websockets.InvalidStatus as refused:
            answer = refused.response
            try:
                got = orjson.loads(answer.body)["error"]["code"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                got = answer.body[:200]
            if (answer.status_code, got) != (status, code):
                run.fail(f"handshake {query} {headers} {origin}: {answer.status_code} {got}, expected {status} {code}")
            run.handshakes[answer.status_code] += 1
        else:
            await socket.close()
            run.fail(f"handshake {query} {headers} {origin} was accepted")


async def read_topics(bootstrap: str) -> dict[str, list[ConsumerRecord]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        present = await consumer.topics()
    finally:
        await consumer.stop()
    # Topics other tests make for themselves are named `test.*`.
    unknown = {t for t in present - TOPIC_SCHEMAS.keys()
               if not t.startswith(("__", "test.")) and "__assignor" not in t}
    assert not unknown, f"topics without a schema file: {unknown}"
    assert TOPIC_SCHEMAS.keys() <= present, f"missing topics: {TOPIC_SCHEMAS.keys() - present}"
    return {topic: await read_all(bootstrap, topic) for topic in TOPIC_SCHEMAS}


def user_ids(topic: str, record: ConsumerRecord) -> set[str]:
    """User ids a record names: its key on user-keyed topics, `user_id` fields and `typing` lists
    (metadata is the users' own data and is not looked into)."""
    found = {record.key.decode()} if topic in USER_KEYED and record.key else set()
    stack: list[Any] = [orjson.loads(record.value)] if record.value is not None else []
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                if key == "user_id" and isinstance(inner, str):
                    if inner:  # empty in `channel.expired`, which no user caused
                        found.add(inner)
                elif key == "typing" and isinstance(inner, list):
                    found.update(u for u in inner if isinstance(u, str))
                elif key not in ("metadata", "status_metadata"):
                    stack.append(inner)
        elif isinstance(value, list):
            stack.extend(value)
    return found


def set_aside(records: dict[str, list[ConsumerRecord]]) -> set[tuple[str, int, int]]:
    letters = [orjson.loads(r.value) for r in records[topics.DEAD_LETTERS.name]]
    return {(d["topic"], d["partition"], d["offset"]) for d in letters}


def schema_problems(records: dict[str, list[ConsumerRecord]]) -> tuple[list[str], int]:
    """Records that do not validate against their topic's JSON Schema; and how many were checked."""
    skipped, problems, checked = set_aside(records), [], 0
    for topic, found in records.items():
        name = TOPIC_SCHEMAS[topic]
        check = validator(name, FILES[name][0])
        for record in found:
            where = f"{topic}[{record.partition}@{record.offset}]"
            if (topic, record.partition, record.offset) in skipped:
                continue
            if record.value is None:
                if topic in DELETE_POLICY:
                    problems.append(f"{where}: a tombstone on a topic that is not compacted")
                continue
            checked += 1
            try:
                value = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                problems.append(f"{where}: not JSON: {record.value[:200]!r}")
                continue
            error = next(iter(check.iter_errors(value)), None)
            if error is not None:
                problems.append(f"{where}: {error.message[:200]} at {error.json_path}")
    return problems, checked


def logged_writes(events: list[Event]) -> dict[str, list[tuple[str, Any]]]:
    """Per connection, its channel, typing and update events; typing renewals (throttled) left out."""
    writes: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    typing: dict[str, set[str]] = defaultdict(set)
    for e in events:
        if e.type not in COMPARED:
            continue
        channel = getattr(e, "channel", None)
        if e.type == "typing.started":
            if channel in typing[e.connection_id]:
                continue
            typing[e.connection_id].add(channel)
        elif e.type in ("typing.stopped", "channel.left"):
            typing[e.connection_id].discard(channel)
        if e.type == "presence.updated":
            fields = {k: getattr(e, k) for k in ("status", "status_text", "status_emoji", "metadata",
                                                 "status_metadata", "visible", "event_id")}
            writes[e.connection_id].append((e.type, fields))
        else:
            writes[e.connection_id].append((e.type, channel))
    return writes


def typing_throttle_problems(events: list[Event], connections: set[str]) -> list[str]:
    """Within one typing episode a connection writes at most one typing.started per second and channel."""
    last: dict[tuple[str, str], int] = {}
    problems = []
    for e in events:
        if e.connection_id not in connections:
            continue
        key = (e.connection_id, getattr(e, "channel", ""))
        if e.type == "typing.started":
            if key in last and e.at - last[key] < 990:
                problems.append(f"typing.started {e.at - last[key]} ms after the previous one: {key}")
            last[key] = e.at
        elif e.type in ("typing.stopped", "channel.left"):
            last.pop(key, None)
    return problems


def event_problems(run: Run, events: list[Event], fuzz_users: set[str], attackers: set[str]) -> list[str]:
    problems = []
    ids_of: dict[str, set[str]] = defaultdict(set)
    for connection, user in run.owners.items():
        ids_of[user].add(connection)
    fuzz_events = [e for e in events if e.user_id in fuzz_users or e.connection_id in run.owners]
    for e in fuzz_events:
        owner = run.owners.get(e.connection_id)
        if owner is not None and owner != e.user_id:
            problems.append(f"{e.type} {e.event_id} of connection {e.connection_id} names {e.user_id}, not {owner}")
        side = {f"rest:{run.edge_id}"} if e.edge_id == run.edge_id else {""}  # REST updates; sweeper events
        if e.user_id in fuzz_users and e.connection_id not in ids_of[e.user_id] | side:
            problems.append(f"{e.type} {e.event_id} of {e.user_id} on a connection it never had: {e.connection_id}")
        channel = getattr(e, "channel", None)
        if e.user_id in attackers and channel is not None and channel not in run.own:
            problems.append(f"{e.type} of attacker {e.user_id} in a channel it may not use: {channel}")
    logged = logged_writes([e for e in fuzz_events if e.connection_id in run.owners])
    for connection, predicted in run.writes.items():
        if logged.get(connection, []) != predicted:
            got = logged.get(connection, [])
            first = next((i for i, (a, b) in enumerate(zip(got, predicted, strict=False)) if a != b),
                         min(len(got), len(predicted)))
            problems.append(f"connection {connection} of {run.owners[connection]} wrote {len(got)} events, its "
                            f"accepted frames {len(predicted)}; first difference at {first}: "
                            f"{got[first:first + 1]} vs {predicted[first:first + 1]}")
    return problems + typing_throttle_problems(fuzz_events, set(run.owners))


async def settle(run: Run, users: list[str], channels: list[str]) -> None:
    """Waits until the processor has applied everything the fuzz users did: each user's update with
    `wait=true` comes after its other events, and each user then has no connection left."""
    async with httpx.AsyncClient(base_url=run.stack.base_url, timeout=10) as http:
        for user in users:
            headers = {"Authorization": f"Bearer {run.stack.token(user)}"}

            async def applied(headers: dict[str, str] = headers) -> bool:
                answer = await http.post("/realtime/presence/update?wait=true", json={"status": "online"},
                                         headers=headers)
                return answer.status_code == 200

            async def gone(user: str = user, headers: dict[str, str] = headers) -> bool:
                answer = await http.get(f"/realtime/users/{user}/presence", headers=headers)
                return answer.json()["connections"] == 0

            await eventually(applied, timeout_s=30, interval_s=0.5)
            await eventually(gone, timeout_s=30, interval_s=0.2)
        headers = {"Authorization": f"Bearer {run.stack.token(run.user('reader'))}"}
        for channel in channels:

            async def empty(channel: str = channel) -> bool:
                answer = await http.get(f"/realtime/channels/{channel}/presence?count_only=true", headers=headers)
                return answer.json()["occupancy"] == 0

            await eventually(empty, timeout_s=30, interval_s=0.2)


def _show(case: Case) -> str:
    return f"{case.kind} {[item if len(repr(item)) < 200 else repr(item)[:200] + '...' for item in case.items]}"


async def test_hostile_websocket_traffic_changes_nothing_but_the_attackers_own_valid_requests(stack: Stack) -> None:
    run = Run(stack=stack, oracle=Oracle(POLICY_FILE, MAX_CHANNELS))
    began = time.monotonic()
    edge_log = stack.logs / "edge.log"
    log_offset = edge_log.stat().st_size if edge_log.exists() else 0
    workers = [w for w in stack.workers if w.poll() is None]
    before = await read_topics(stack.bootstrap)
    users_before = {u for topic, found in before.items() for r in found for u in user_ids(topic, r)}
    letters_before = len(before[topics.DEAD_LETTERS.name])

    foreign = [run.room, run.side, "lobby", "probe", f"fz-atk-x{run.tag}-1", f"FZ-ATK-{run.tag}-1", f"fz-atk-{run.tag}"]
    statuses = sorted(run.oracle.visible)
    drawn = drawn_frames(int(FRAMES * DRAWN_SHARE) + 1, SEED, run.own, foreign, run.never, statuses)  # CPU-bound

    stop = asyncio.Event()
    legit, beating = await Legit.start(run, stop)
    victim = (legit.member.user_id, connection_of(legit.member))
    background = [beating, *(asyncio.create_task(t) for t in (legit.work(stop), health(run, stop)))]

    await hostile_handshakes(run, victim[0])
    attackers = [run.user(f"atk{i}") for i in range(CONNECTIONS)]
    flood_budget = int(FRAMES * FLOOD_SHARE)

    def hostile(i: int) -> Hostile:  # seeded per connection: the same seed replays the same cases
        return Hostile(random.Random(f"{SEED}-{i}"), run.own, foreign, victim, run.never, drawn[i::CONNECTIONS],
                       statuses)

    run.deadline = time.monotonic() + SECONDS
    attack_began = time.monotonic()
    fleet = [Attacker(run, user, hostile(i), len(range(i, FRAMES - flood_budget, CONNECTIONS)))
             for i, user in enumerate(attackers)]
    await asyncio.gather(*(a.attack() for a in fleet), flood(run, hostile(CONNECTIONS), flood_budget))
    attack_s = time.monotonic() - attack_began

    stop.set()
    await asyncio.gather(*background)
    legit.check()
    for client in (legit.member, legit.peer, legit.observer):
        await client.close()
    fuzz_users = {*attackers, run.user("flood"), run.user("member"), run.user("peer"), run.user("observer")}
    await settle(run, sorted(fuzz_users), [*run.own, run.room, run.side])

    after = await read_topics(stack.bootstrap)
    problems, checked = schema_problems(after)
    users_after = {u for topic, found in after.items() for r in found for u in user_ids(topic, r)}
    tainted = [f"{topic}[{r.partition}@{r.offset}]" for topic, found in after.items() for r in found
               if run.never.encode() in (r.key or b"") + (r.value or b"")]
    events = await logged_events(stack.bootstrap)
    wrong_events = event_problems(run, events, fuzz_users, set(attackers) | {run.user("flood")})
    new_log = edge_log.read_bytes()[log_offset:].decode(errors="replace") if edge_log.exists() else ""
    sent = sum(run.frames.values())
    print(
        f"\nfuzz seed {SEED}: {sent} hostile frames in {attack_s:.1f} s over {CONNECTIONS} connections + floods "
        f"({dict(run.frames)}); error codes {dict(run.codes)}; closes {dict(run.closes)} ({run.resets} of the "
        f"1009 seen as resets); refused handshakes "
        f"{dict(run.handshakes)}; legit rounds {legit.rounds}, slowest {max(run.latencies, default=0):.2f} s; "
        f"{checked} records validated on {len(after)} topics; {time.monotonic() - began:.1f} s in all"
    )

    assert run.failures == [], f"{len(run.failures)} failures:\n" + "\n".join(run.failures[:12])
    assert sent >= FRAMES or time.monotonic() > run.deadline, f"only {sent} of {FRAMES} frames were sent"
    if FRAMES >= 1000:  # every kind of hostile frame was sent
        assert set(Hostile.KINDS) | {"flood"} <= set(run.frames), set(Hostile.KINDS) - set(run.frames)
    assert run.closes.keys() <= {1007, 1008, 1009}, run.closes
    assert legit.rounds >= 3 and len(run.latencies) >= 6
    assert stack.edge is not None and stack.edge.poll() is None, "the edge exited"
    assert all(w.poll() is None for w in workers), "a worker exited"
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
    crashes = [i for i in (new_log.find("Traceback"), new_log.find("Exception in ASGI application")) if i >= 0]
    assert not crashes, f"the edge logged a crash:\n{new_log[max(min(crashes) - 300, 0):min(crashes) + 3000]}"
    assert problems == [], f"{len(problems)} schema-invalid records: {problems[:10]}"
    assert checked > 0
    assert tainted == [], f"records holding a forged id: {tainted[:10]}"
    unknown_users = users_after - users_before - fuzz_users
    assert unknown_users == set(), f"user ids that no valid token carried: {sorted(unknown_users)[:10]}"
    assert fuzz_users <= users_after
    assert wrong_events == [], f"{len(wrong_events)} wrong events: {wrong_events[:10]}"
    assert len(after[topics.DEAD_LETTERS.name]) == letters_before, "the fuzz produced dead letters"

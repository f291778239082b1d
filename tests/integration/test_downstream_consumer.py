"""The example downstream consumer (clients/consumer/presence_consumer.py) against the real broker: stopped
while users come and go, it resumes from its committed offsets, loses nothing and hands each change over once,
even when every change comes again."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from clients.consumer.presence_consumer import PresenceStore, consume
from schemas.changes import Change, UserCameOnline, UserWentOffline
from schemas.codec import decode, decode_change
from schemas.topics import CHANGES
from services.log_reader import read
from tests.integration.client import Client, heartbeating
from tests.integration.frames import user
from tests.integration.stack import Stack, eventually

C = TypeVar("C", bound=Change)

class WatchedStore(PresenceStore):
    """The example's store, noting every change the consumer read, copies included."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.read: list[Change] = []

    def first_time(self, change: Change) -> bool:
        self.read.append(change)
        return super().first_time(change)


@dataclass
class Run:
    """One run of the example consumer in this process: its own store on the shared file, and its task."""

    store: WatchedStore
    handed: list[Change]  # what the consumer handed to the handler
    stopping: asyncio.Event
    task: asyncio.Task[None]

    @classmethod
    def start(cls, bootstrap: str, group_id: str, db: Path) -> Run:
        store, handed, stopping = WatchedStore(str(db)), [], asyncio.Event()

        def handle(change: Change) -> None:
            handed.append(change)
            store.apply(change)

        return cls(store, handed, stopping, asyncio.create_task(consume(bootstrap, group_id, store, handle, stopping)))

    async def until(self, check: Callable[[WatchedStore], bool], timeout_s: float = 30) -> None:
        def done() -> bool:
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise AssertionError("the consumer stopped")
            return check(self.store)

        await eventually(done, timeout_s=timeout_s)

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.wait_for(self.task, 10)
        self.store.close()


async def changes_of(bootstrap: str, users: set[str]) -> list[Change]:
    """The users' changes in `presence.changes` as it is now, copies included, each user's in order."""
    found = []
    async for records in read(bootstrap, CHANGES.name):
        found += [c for c in (decode_change(decode(r.value, dict)) for r in records) if c.user_id in users]
    return found


def last(changes: list[Change], user_id: str, kind: type[C]) -> C:
    return [c for c in changes if c.user_id == user_id and isinstance(c, kind)][-1]


def count(changes: list[Change], user_id: str, kind: type[Change]) -> int:
    return len({c.change_id for c in changes if c.user_id == user_id and isinstance(c, kind)})


async def test_consumer_resumes_after_downtime_and_loses_nothing(
        stack: Stack, connect: Callable[[str], Awaitable[Client]], channel: str, tmp_path: Path) -> None:
    alice, bob, carol, dave = (user(name) for name in ("alice", "bob", "carol", "dave"))
    ours = {alice, bob, carol, dave}
    db, group = tmp_path / "presence.sqlite", f"consumer-test-{uuid.uuid4().hex[:8]}"

    first = Run.start(stack.bootstrap, group, db)
    alice_ws, bob_ws = await connect(alice), await connect(bob)
    await alice_ws.join(channel)  # member.* changes too
    async with heartbeating(alice_ws):
        await bob_ws.close()
        await first.until(lambda s: alice in s.online() and bob in s.last_seen() and bob not in s.online())
        await first.stop()

        # Downtime: users come and go, and the processor writes their changes, while nobody reads them.
        carol_ws, dave_ws = await connect(carol), await connect(dave)
        await dave_ws.close()
        await alice_ws.close()
        alice_left = int(time.time() * 1000)
        bob_ws = await connect(bob)
    async with heartbeating(carol_ws, bob_ws):
        async def backlog_written() -> bool:
            log = await changes_of(stack.bootstrap, ours)
            return (count(log, alice, UserWentOffline), count(log, dave, UserWentOffline),
                    count(log, bob, UserCameOnline), count(log, carol, UserCameOnline)) == (1, 1, 2, 1)

        await eventually(backlog_written, timeout_s=30, interval_s=0.5)

        second = Run.start(stack.bootstrap, group, db)
        await second.until(lambda s: ours <= s.last_seen().keys() and ours & s.online().keys() == {bob, carol})
        online, last_seen = second.store.online(), second.store.last_seen()
        log = await changes_of(stack.bootstrap, ours)
        await second.stop()

        # Offsets lost (here a new group, which starts from the oldest change): every change comes again,
        # and the store drops each one as a copy.
        again = Run.start(stack.bootstrap, f"{group}-again", db)
        await again.until(lambda s: {c.change_id for c in s.read} >= {c.change_id for c in log})
        assert (again.store.online(), again.store.last_seen()) == (online, last_seen)
        await again.stop()
        assert not [c for c in again.handed if c.user_id in ours]

    assert {u: online[u] for u in online if u in ours} == {bob: "online", carol: "online"}
    assert last_seen[alice] == last(log, alice, UserWentOffline).last_seen
    assert abs(last_seen[alice] - alice_left) < 2000
    assert last_seen[dave] == last(log, dave, UserWentOffline).last_seen
    assert last_seen[bob] == last(log, bob, UserCameOnline).at  # came back during the downtime
    assert last_seen[carol] == last(log, carol, UserCameOnline).at

    # Every change of these users, each handed over exactly once across both runs ...
    handed = [c.change_id for c in first.handed + second.handed if c.user_id in ours]
    assert set(handed) == {c.change_id for c in log}
    assert max(Counter(handed).values()) == 1
    # ... and the second run started where the first one committed: it read none of the first's again.
    first_read = {c.change_id for c in first.store.read if c.user_id in ours}
    assert first_read and not first_read & {c.change_id for c in second.store.read}

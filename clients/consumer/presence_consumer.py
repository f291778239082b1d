"""An example downstream consumer of `presence.changes`: who is online, and when each user was last seen.

Plain aiokafka, in a consumer group of its own. It commits its offsets only once a batch's changes are
stored, so after a stop or a crash it resumes where it left off and loses nothing (at-least-once).
A change can therefore come twice: a batch read again after a crash between the store and the
commit, or a change the processor wrote again, with the same `change_id`, after its own failover.
The store keeps the ids it applied and drops the copies, in the same SQLite transaction as the
state they change.

It honours erasures: it also reads `presence.erasures`, deletes what it holds of an erased user, and
drops the user's changes stamped at or before the erasure, also those it reads after the erasure (the
two topics are not ordered with each other). A user who comes back after an erasure is new.

Run it from the repository root, against `make run` (docs/consumers.md walks through it):

    .venv/bin/python -m clients.consumer.presence_consumer --db presence.sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer

from schemas.changes import Change, UserCameOnline, UserStatusChanged, UserWentOffline
from schemas.codec import decode, decode_change
from schemas.erasures import UserErasure
from schemas.topics import CHANGES, ERASURES, EVENTS

Handler = Callable[[Change], None]

# A copy comes from the processor redoing `presence.events`: the ids of changes older than that topic
# keeps its events cannot come again.
KEEP_IDS_MS = EVENTS.retention_ms

TABLES = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY, online INTEGER NOT NULL, status TEXT NOT NULL, last_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS applied (change_id TEXT PRIMARY KEY, at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS applied_at ON applied (at);
CREATE TABLE IF NOT EXISTS erased (user_id TEXT PRIMARY KEY, erased_at INTEGER NOT NULL);
"""


class PresenceStore:
    """Users' presence in a SQLite file, with the ids of the changes applied to it."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(TABLES)

    def first_time(self, change: Change) -> bool:
        """Notes the change as applied; false if it was already (a copy)."""
        cursor = self.db.execute("INSERT OR IGNORE INTO applied VALUES (?, ?)", (change.change_id, change.at))
        return cursor.rowcount == 1

    def erase(self, erasure: UserErasure) -> None:
        """Forgets what the store holds of the user up to the erasure, and remembers the erasure for
        changes still to come that it covers."""
        self.db.execute("INSERT INTO erased VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET "
                        "erased_at = max(erased_at, excluded.erased_at)", (erasure.user_id, erasure.erased_at))
        self.db.execute("DELETE FROM users WHERE user_id = ? AND last_seen <= ?", (erasure.user_id, erasure.erased_at))

    def erased(self, change: Change) -> bool:
        """Whether the change is of an erased user, at or before the erasure."""
        row = self.db.execute("SELECT erased_at FROM erased WHERE user_id = ?", (change.user_id,)).fetchone()
        return row is not None and change.at <= row[0]

    def apply(self, change: Change) -> None:
        """The example handler. `member.*` changes say who is in which channel; this example only
        wants users, so it leaves them out."""
        if isinstance(change, UserCameOnline):
            self._put(change.user_id, True, change.status, change.at)
        elif isinstance(change, UserWentOffline):
            self._put(change.user_id, False, "offline", change.last_seen)
        elif isinstance(change, UserStatusChanged):  # `at` may be the idle rule's, not the user's: keep last_seen
            self.db.execute("UPDATE users SET status = ? WHERE user_id = ?", (change.status, change.user_id))

    def _put(self, user_id: str, online: bool, status: str, last_seen: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?)", (user_id, online, status, last_seen))

    def commit(self) -> None:
        if KEEP_IDS_MS is not None:
            self.db.execute("DELETE FROM applied WHERE at < ?", (int(time.time() * 1000) - KEEP_IDS_MS,))
        self.db.commit()

    def online(self) -> dict[str, str]:
        """Who is online, with their status."""
        return dict(self.db.execute("SELECT user_id, status FROM users WHERE online"))

    def last_seen(self) -> dict[str, int]:
        """When each user known was last seen: when they went offline, or came online."""
        return dict(self.db.execute("SELECT user_id, last_seen FROM users"))

    def close(self) -> None:
        self.db.close()  # what was not committed is rolled back, and will be read again


async def consume(bootstrap: str, group_id: str, store: PresenceStore, handle: Handler,
                  stopping: asyncio.Event) -> None:
    """Hands each change of `presence.changes` to `handle` once, unless erased, until `stopping` is set."""
    consumer = AIOKafkaConsumer(
        CHANGES.name, ERASURES.name, bootstrap_servers=bootstrap, group_id=group_id,
        enable_auto_commit=False,  # commit only what the store holds
        auto_offset_reset="earliest",  # a new group starts from the oldest change kept
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        while not stopping.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                continue
            for tp, records in batch.items():  # per partition, in order: a user's changes are in one partition
                for record in records:
                    # A record this code cannot decode (a newer version) raises: upgrade, then it resumes here.
                    if tp.topic == ERASURES.name:
                        store.erase(decode(record.value, UserErasure))
                        continue
                    change = decode_change(decode(record.value, dict))
                    if store.first_time(change) and not store.erased(change):
                        handle(change)
            store.commit()
            await consumer.commit()  # the positions after this batch
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="presence-consumer.sqlite", help="the SQLite file (default: %(default)s)")
    parser.add_argument("--group", default="presence-consumer-example", help="consumer group (default: %(default)s)")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    store = PresenceStore(args.db)

    def show(change: Change) -> None:
        store.apply(change)
        if change.type.startswith("user."):
            when = datetime.fromtimestamp(change.at / 1000, UTC).isoformat(timespec="milliseconds")
            print(f"{when} {change.type:<20} {change.user_id}  online now: {len(store.online())}", flush=True)

    async def run() -> None:
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stopping.set)
        await consume(bootstrap, args.group, store, show, stopping)

    try:
        asyncio.run(run())
    finally:
        store.close()


if __name__ == "__main__":
    main()

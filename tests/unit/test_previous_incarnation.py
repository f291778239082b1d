"""What a restarted edge closes: its own id's connections from before it started, never its new ones."""

from __future__ import annotations

import socket

from schemas.codec import encode
from schemas.events import ConnectionClosed
from schemas.state import Connection, UserPresence
from services.previous_incarnation import Snapshot, close_events, stale_connections
from services.settings import EdgeSettings

ME = "edge-host-8080"


def connection(connection_id: str, edge_id: str = ME, **fields: int) -> Connection:
    return Connection(connection_id=connection_id, edge_id=edge_id, opened_at=1, last_heartbeat=1, timeout_ms=30_000,
                      **fields)


def state(user_id: str, *connections: Connection) -> UserPresence:
    return UserPresence(user_id=user_id, connections=connections)


def test_only_this_edges_connections_that_were_never_dropped_are_stale() -> None:
    states = [
        state("ada", connection("a1"), connection("a2", edge_id="edge-host-8081")),
        state("bob", connection("b1", dropped_at=5, grace_ms=15_000)),  # keeps the grace it was given
        state("cy", connection("c1"), connection("c2")),
        state("dee", connection("d1", edge_id="edge-host-808")),  # a prefix of this edge's id is another edge
        state("eve"),
    ]

    assert stale_connections(states, ME) == [("ada", "a1"), ("cy", "c1"), ("cy", "c2")]


def test_each_stale_connection_gets_a_close_from_this_edge() -> None:
    events = close_events([("ada", "a1"), ("cy", "c2")], ME, at=1_000)

    assert [(e.user_id, e.connection_id, e.edge_id, e.at) for e in events] == [
        ("ada", "a1", ME, 1_000), ("cy", "c2", ME, 1_000)
    ]
    assert all(isinstance(e, ConnectionClosed) for e in events)
    assert len({e.event_id for e in events}) == 2


def test_records_written_after_start_up_are_not_read_so_this_incarnations_connections_stay() -> None:
    snapshot = Snapshot(ME, highwaters={0: 2, 1: 1})
    snapshot.add(0, 0, b"ada", encode(state("ada", connection("old"))))
    snapshot.add(0, 1, b"bob", encode(state("bob", connection("old-b"))))
    # At and above the start-up highwater: states holding connections this incarnation opened.
    snapshot.add(0, 2, b"ada", encode(state("ada", connection("old"), connection("new"))))
    snapshot.add(1, 1, b"cy", encode(state("cy", connection("new-c"))))
    snapshot.add(1, 0, b"dee", encode(state("dee", connection("old-d"))))

    assert sorted(snapshot.stale()) == [("ada", "old"), ("bob", "old-b"), ("dee", "old-d")]


def test_the_latest_record_of_a_user_decides() -> None:
    snapshot = Snapshot(ME, highwaters={0: 10})
    snapshot.add(0, 0, b"ada", encode(state("ada", connection("a1"))))
    snapshot.add(0, 1, b"ada", encode(state("ada")))  # closed since
    snapshot.add(0, 2, b"bob", encode(state("bob", connection("b1"))))
    snapshot.add(0, 3, b"bob", None)  # deleted
    snapshot.add(0, 4, b"cy", encode(state("cy", connection("c1", edge_id="edge-other"))))
    snapshot.add(0, 5, b"cy", encode(state("cy", connection("c1", edge_id="edge-other"), connection("c2"))))
    snapshot.add(0, 6, None, encode(state("dee", connection("d1"))))  # no key: not a table record

    assert snapshot.stale() == [("cy", "c2")]


def test_an_undecodable_state_is_skipped() -> None:
    snapshot = Snapshot(ME, highwaters={0: 10})
    snapshot.add(0, 0, b"ada", b'{"user_id": "ada", "edge_id": "' + ME.encode() + b'", "unknown": 1}')
    snapshot.add(0, 1, b"bob", encode(state("bob", connection("b1"))))

    assert snapshot.stale() == [("bob", "b1")]


def test_the_default_edge_id_is_stable_per_host_and_port() -> None:
    def edge_id(**env: str) -> str:
        return EdgeSettings.from_env({"PRESENCE_JWT_SECRET": "s", **env}).edge_id

    host = socket.gethostname()
    assert edge_id() == edge_id() == f"edge-{host}-8080"
    assert edge_id(PRESENCE_HTTP_PORT="8081") == f"edge-{host}-8081"
    assert edge_id(PRESENCE_EDGE_ID="edge-a", PRESENCE_HTTP_PORT="8081") == "edge-a"

"""The edge's judgement of the processor's states: which of its open connections the processor
still holds, with what timeout, and which it no longer holds (defect B, docs/reliability.md)."""

from __future__ import annotations

from schemas.codec import encode
from schemas.state import Connection, EdgeLease, UserPresence
from services.processor_watch import HeldConnections, ProcessorWatch


def connection(connection_id: str, timeout_ms: int = 30_000, opened_at: int = 1, **fields: object) -> Connection:
    return Connection(connection_id=connection_id, edge_id="edge-1", opened_at=opened_at, last_heartbeat=opened_at,
                      timeout_ms=timeout_ms, **fields)  # type: ignore[arg-type]


def state(user_id: str, *connections: Connection) -> UserPresence:
    return UserPresence(user_id=user_id, connections=connections)


def test_a_connection_the_processor_held_and_no_longer_holds_is_gone_once() -> None:
    held, gone = HeldConnections(), []
    held.hold("ada", "a1", lambda cause: gone.append("a1"))
    held.hold("ada", "a2", lambda cause: gone.append("a2"))

    assert held.judge(state("ada", connection("a1"), connection("a2"))).gone == []
    assert held.judge(state("ada", connection("a2"))).gone == ["a1"]  # timed out by the sweeper
    assert held.judge(state("ada", connection("a2"))).gone == []
    assert gone == ["a1"]
    assert held.holds_user("ada")


def test_a_connection_ended_by_a_forced_offline_is_told_from_a_timeout() -> None:
    held, causes = HeldConnections(), []
    for connection_id in ("a1", "a2"):
        held.hold("ada", connection_id, lambda cause, c=connection_id: causes.append((c, cause)))
    held.judge(state("ada", connection("a1", opened_at=8), connection("a2", opened_at=9)))
    # The sweeper times a1 out; a forced offline before both opened ended a0 only: no cause of that.
    held.judge(UserPresence(user_id="ada", connections=(connection("a2", opened_at=9),),
                            forced_offline_connections=("a0",)))
    held.judge(UserPresence(user_id="ada", forced_offline_connections=("a2",)))

    assert causes == [("a1", "timed_out"), ("a2", "forced_offline")]


def test_a_forced_offline_of_the_connections_before_a_reconnect_does_not_name_the_new_one() -> None:
    held, causes = HeldConnections(), []
    held.hold("ada", "a3", lambda cause: causes.append(cause))
    # Forced offline at 10 ended a1 and a2; a3 opened at 20 after it, and later times out.
    held.judge(UserPresence(user_id="ada", connections=(connection("a3", opened_at=20),),
                            forced_offline_connections=("a1", "a2")))
    held.judge(UserPresence(user_id="ada", forced_offline_connections=("a1", "a2")))

    assert causes == ["timed_out"]


def test_states_from_before_the_open_was_applied_close_nothing() -> None:
    held, gone = HeldConnections(), []
    held.hold("ada", "a1", lambda cause: gone.append("a1"))

    assert held.judge(state("ada", connection("older"))).gone == []  # the open is not folded yet
    assert held.judge(state("ada")).gone == []
    assert gone == []


def test_the_timeout_in_force_is_the_shortest_of_the_connection_and_its_channels() -> None:
    held = HeldConnections()
    held.hold("ada", "a1", lambda cause: None)
    held.hold("ada", "a2", lambda cause: None)

    verdict = held.judge(state("ada", connection("a1", 300_000),
                               connection("a2", 300_000, channel_timeouts={"game-1": 10_000})))

    assert {c: held.timeout_in_force_ms for c, held in verdict.held.items()} == {"a1": 300_000, "a2": 10_000}


def test_released_connections_and_other_users_are_not_judged() -> None:
    held, gone = HeldConnections(), []
    held.hold("ada", "a1", lambda cause: gone.append("a1"))
    held.judge(state("ada", connection("a1")))
    held.release("ada", "a1")  # the session ended: its own close must not count as a timeout

    assert not held.holds_user("ada")
    assert held.judge(state("ada")).gone == []
    assert held.judge(state("bob")).gone == []
    assert gone == []


async def test_the_watch_decodes_only_held_users_and_reports_their_timeouts_and_departures() -> None:
    held, gone, timeouts = HeldConnections(), [], []
    held.hold("ada", "a1", lambda cause: gone.append("a1"))
    watch = ProcessorWatch("127.0.0.1:1", "edge-1", 4, 5, held,
                           on_held=lambda c, connection: timeouts.append((c, connection.timeout_in_force_ms)),
                           on_lease=lambda p, since, at: None)

    watch._apply(b"bob", b"not even JSON")  # not held here: never decoded
    watch._apply(b"ada", encode(state("ada", connection("a1", 20_000))))
    watch._apply(b"ada", b"garbage")  # logged and skipped
    watch._apply(b"ada", None)  # a deleted user holds nothing

    assert timeouts == [("a1", 20_000)]
    assert gone == ["a1"]


async def test_the_watch_reports_only_this_edges_applied_leases() -> None:
    renewals: list[tuple[int, int, int]] = []
    watch = ProcessorWatch("127.0.0.1:1", "edge-1", 4, 5, HeldConnections(), on_held=lambda c, connection: None,
                           on_lease=lambda p, since, at: renewals.append((p, since, at)))

    watch._lease(b"edge-1/2", encode(EdgeLease(edge_id="edge-1", since=10, at=5_000, ttl_ms=10_000)), 2)
    other_edge = EdgeLease(edge_id="edge-10", since=10, at=6_000, ttl_ms=10_000)
    watch._lease(b"edge-10/2", encode(other_edge), 2)
    watch._lease(b"edge-1/3", b"garbage", 3)  # logged and skipped
    watch._lease(b"edge-1/3", None, 3)

    assert renewals == [(2, 10, 5_000)]

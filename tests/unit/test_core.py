"""The pure presence core: one test per transition, each checking the state and the exact changes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from schemas.changes import (
    Change,
    Member,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    UserCameOnline,
    UserStatusChanged,
    UserWentOffline,
)
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    ConnectionTimedOut,
    Event,
    Heartbeat,
    PresenceUpdated,
    StatusExpired,
    TypingExpired,
    TypingStarted,
    TypingStopped,
    UserIdled,
)
from schemas.state import Connection, UserPresence
from streams.core import apply, due_events

EDGE = "edge-1"
TIMEOUT = 30_000
GRACE = 5_000


# Events.


def opened(conn: str, at: int, user: str = "u", *, status: str | None = None, timeout: int = TIMEOUT,
           device: str | None = None, metadata: dict[str, Any] | None = None, idle_after: int | None = None,
           eid: str | None = None) -> ConnectionOpened:
    return ConnectionOpened(event_id=eid or f"opened:{conn}@{at}", user_id=user, connection_id=conn,
                            edge_id=EDGE, at=at, timeout_ms=timeout, status=status, device=device,
                            metadata=metadata, idle_after_ms=idle_after)


def closed(conn: str, at: int, user: str = "u", *, eid: str | None = None) -> ConnectionClosed:
    return ConnectionClosed(event_id=eid or f"closed:{conn}@{at}", user_id=user, connection_id=conn,
                            edge_id=EDGE, at=at)


def dropped(conn: str, at: int, user: str = "u", *, grace: int = GRACE, eid: str | None = None
            ) -> ConnectionDropped:
    return ConnectionDropped(event_id=eid or f"dropped:{conn}@{at}", user_id=user, connection_id=conn,
                             edge_id=EDGE, at=at, grace_ms=grace)


def timed_out(conn: str, at: int, user: str = "u", *, eid: str | None = None) -> ConnectionTimedOut:
    return ConnectionTimedOut(event_id=eid or f"timed_out:{conn}@{at}", user_id=user, connection_id=conn,
                              edge_id="sweeper", at=at)


def heartbeat(conn: str, at: int, user: str = "u", *, active_at: int | None = None, eid: str | None = None
              ) -> Heartbeat:
    return Heartbeat(event_id=eid or f"heartbeat:{conn}@{at}", user_id=user, connection_id=conn,
                     edge_id=EDGE, at=at, active_at=active_at)


def joined(conn: str, channel: str, at: int, user: str = "u", *, timeout: int | None = None,
           eid: str | None = None) -> ChannelJoined:
    return ChannelJoined(event_id=eid or f"joined:{conn}:{channel}@{at}", user_id=user, connection_id=conn,
                         edge_id=EDGE, at=at, channel=channel, timeout_ms=timeout)


def left(conn: str, channel: str, at: int, user: str = "u", *, eid: str | None = None) -> ChannelLeft:
    return ChannelLeft(event_id=eid or f"left:{conn}:{channel}@{at}", user_id=user, connection_id=conn,
                       edge_id=EDGE, at=at, channel=channel)


def updated(at: int, user: str = "u", *, status: str | None = None, metadata: dict[str, Any] | None = None,
            text: str | None = None, emoji: str | None = None, expires_at: int | None = None,
            visible: bool = True, timeout: int | None = None, conn: str = "c1", eid: str | None = None
            ) -> PresenceUpdated:
    return PresenceUpdated(event_id=eid or f"updated@{at}", user_id=user, connection_id=conn, edge_id=EDGE,
                           at=at, status=status, metadata=metadata, status_text=text, status_emoji=emoji,
                           expires_at=expires_at, visible=visible, timeout_ms=timeout)


def typing_started(conn: str, channel: str, at: int, expires_at: int, user: str = "u", *,
                   eid: str | None = None) -> TypingStarted:
    return TypingStarted(event_id=eid or f"typing:{conn}:{channel}@{at}", user_id=user, connection_id=conn,
                         edge_id=EDGE, at=at, channel=channel, expires_at=expires_at)


def typing_stopped(conn: str, channel: str, at: int, user: str = "u", *, eid: str | None = None) -> TypingStopped:
    return TypingStopped(event_id=eid or f"typing_stopped:{conn}:{channel}@{at}", user_id=user,
                         connection_id=conn, edge_id=EDGE, at=at, channel=channel)


# What the sweeper writes (`due_events` derives the same ids from the deadline).


def typing_expired(channel: str, at: int, deadline: int, user: str = "u") -> TypingExpired:
    return TypingExpired(event_id=f"typing.expired:{user}::{channel}:{deadline}", user_id=user, connection_id="",
                         edge_id="sweeper", at=at, channel=channel)


def status_expired(at: int, deadline: int, user: str = "u") -> StatusExpired:
    return StatusExpired(event_id=f"status.expired:{user}::{deadline}", user_id=user, connection_id="",
                         edge_id="sweeper", at=at)


def idled(at: int, deadline: int, user: str = "u") -> UserIdled:
    return UserIdled(event_id=f"user.idled:{user}::{deadline}", user_id=user, connection_id="", edge_id="sweeper",
                     at=at)


# Folding and expectations.


def run(*events: Event, state: UserPresence | None = None) -> tuple[UserPresence, list[Change]]:
    changes: list[Change] = []
    for event in events:
        state, emitted = apply(state, event)
        changes.extend(emitted)
    assert state is not None
    return state, changes


def cid(event: Event, n: int) -> str:
    return f"{event.event_id}/{n}"


def connection(conn: str, opened_at: int, *, last_heartbeat: int | None = None, channels: tuple[str, ...] = (),
               last_active: int | None = None, timeout: int = TIMEOUT, **fields: Any) -> Connection:
    """A stored connection; `last_heartbeat` and `last_active` default to the time it opened."""
    return Connection(connection_id=conn, edge_id=EDGE, opened_at=opened_at,
                      last_heartbeat=opened_at if last_heartbeat is None else last_heartbeat,
                      last_active=opened_at if last_active is None else last_active,
                      timeout_ms=timeout, channels=channels, **fields)


def view(joined_at: int, last_seen: int, *, connections: int = 1, status: str = "online",
         metadata: dict[str, Any] | None = None, user: str = "u", devices: tuple[str, ...] = (),
         text: str | None = None, emoji: str | None = None) -> Member:
    return Member(user_id=user, status=status, joined_at=joined_at, last_seen=last_seen,
                  connections=connections, metadata=metadata or {}, devices=devices, status_text=text,
                  status_emoji=emoji)


def expect(before: UserPresence, event: Event, **fields: Any) -> UserPresence:
    """`before` with `fields` replaced and `event` remembered as seen."""
    return replace(before, recent_event_ids=(*before.recent_event_ids, event.event_id), **fields)


def assert_noop(state: UserPresence | None, event: Event) -> None:
    before = state or UserPresence(user_id=event.user_id)
    after, changes = apply(state, event)
    assert changes == []
    if isinstance(event, Heartbeat):
        assert after == before
        return
    assert replace(after, recent_event_ids=()) == replace(before, recent_event_ids=())
    # Remembered all the same, so that redoing it later cannot take effect either.
    assert event.event_id in after.recent_event_ids


# connection.opened


def test_connection_opened_first_device_brings_user_online() -> None:
    e = opened("c1", 100, status="away")

    state, changes = apply(None, e)

    assert state == UserPresence(user_id="u", status="away", connections=(connection("c1", 100),),
                                 last_seen=100, recent_event_ids=(e.event_id,))
    assert changes == [UserCameOnline(change_id=cid(e, 0), user_id="u", at=100, status="away")]


def test_connection_opened_second_device_announces_nothing_until_it_joins() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = opened("c2", 20, status="busy")

    state, changes = apply(before, e)

    assert changes == []
    assert state == expect(before, e, connections=(*before.connections, connection("c2", 20)), last_seen=20)
    assert state.status == "online"  # an opening device does not override the status of an online user

    j = joined("c2", "room", 30)
    _, changes = apply(state, j)
    assert changes == [MemberUpdated(change_id=cid(j, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, connections=2))]


# connection.closed


def test_connection_closed_last_device_leaves_channels_and_goes_offline() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = closed("c1", 500)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(), channel_since={}, last_seen=500)
    assert state.public_status == "offline"
    assert changes == [
        MemberLeft(change_id=cid(e, 0), user_id="u", at=500, channel="room", reason="leave", last_seen=500),
        UserWentOffline(change_id=cid(e, 1), user_id="u", at=500, reason="leave", last_seen=500),
    ]


def test_connection_closed_other_device_in_channel_lowers_connection_count() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), opened("c2", 20), joined("c2", "room", 30))
    e = closed("c2", 500)

    state, changes = apply(before, e)

    # c1 inherits c2's last activity (30): the user's activity clock does not move back.
    assert state == expect(before, e, connections=(connection("c1", 0, channels=("room",), last_active=30),),
                           last_seen=500)
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=500, channel="room",
                                     member=view(joined_at=10, last_seen=500, connections=1))]


def test_connection_closed_other_device_outside_channel_announces_nothing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), opened("c2", 20))
    e = closed("c2", 500)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(connection("c1", 0, channels=("room",), last_active=20),),
                           last_seen=500)
    assert changes == []


def test_connection_closed_device_alone_in_channel_leaves_only_that_channel() -> None:
    before, _ = run(opened("c1", 0), opened("c2", 5), joined("c2", "side", 10))
    e = closed("c2", 500)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(connection("c1", 0, last_active=10),), channel_since={},
                           last_seen=500)
    assert changes == [MemberLeft(change_id=cid(e, 0), user_id="u", at=500, channel="side", reason="leave",
                                  last_seen=500)]


# connection.dropped


@pytest.mark.parametrize(("grace", "deadline"), [(5_000, 17_000), (60_000, 40_000)])
def test_connection_dropped_keeps_user_online_until_grace_or_timeout(grace: int, deadline: int) -> None:
    before, _ = run(opened("c1", 0), heartbeat("c1", 10_000))
    e = dropped("c1", 12_000, grace=grace)

    state, changes = apply(before, e)

    dropped_connection = connection("c1", 0, last_heartbeat=10_000, dropped_at=12_000, grace_ms=grace)
    assert state == expect(before, e, connections=(dropped_connection,))
    assert state.online
    assert state.connections[0].deadline == deadline  # min(last heartbeat + timeout, dropped_at + grace)
    assert changes == []


def test_connection_dropped_twice_keeps_the_first_drop() -> None:
    before, _ = run(opened("c1", 0), dropped("c1", 1_000))

    assert_noop(before, dropped("c1", 2_000, grace=1))


# connection.timed_out


def test_connection_timed_out_at_deadline_goes_offline_with_reason_timeout() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), heartbeat("c1", 20_000))
    e = timed_out("c1", 50_000)  # the deadline: last heartbeat + timeout

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(), channel_since={}, last_seen=20_000)
    assert changes == [
        MemberLeft(change_id=cid(e, 0), user_id="u", at=50_000, channel="room", reason="timeout",
                   last_seen=20_000),
        UserWentOffline(change_id=cid(e, 1), user_id="u", at=50_000, reason="timeout", last_seen=20_000),
    ]


def test_connection_timed_out_before_deadline_is_ignored() -> None:
    before, _ = run(opened("c1", 0), heartbeat("c1", 20_000))

    assert_noop(before, timed_out("c1", 49_999))


def test_connection_timed_out_loses_to_a_heartbeat_that_landed_after_the_sweep() -> None:
    before, _ = run(opened("c1", 0))
    [timeout] = due_events(before, 30_000, "sweeper")
    after_heartbeat, _ = apply(before, heartbeat("c1", 30_100))

    assert_noop(after_heartbeat, timeout)
    assert apply(after_heartbeat, timeout)[0].online


def test_connection_timed_out_after_drop_uses_the_grace_deadline() -> None:
    before, _ = run(opened("c1", 0), dropped("c1", 1_000, grace=2_000))
    e = timed_out("c1", 3_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(), last_seen=1_000)
    assert changes == [UserWentOffline(change_id=cid(e, 0), user_id="u", at=3_000, reason="timeout",
                                       last_seen=1_000)]


# heartbeat


def test_heartbeat_moves_last_heartbeat_forward_and_announces_nothing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))

    state, changes = apply(before, heartbeat("c1", 1_000))

    # Only the heartbeat time moves: not last_seen nor last_active, and heartbeats are not remembered as seen ids.
    assert state == replace(before, connections=(
        connection("c1", 0, last_heartbeat=1_000, channels=("room",), last_active=10),
    ))
    assert changes == []


@pytest.mark.parametrize("at", [500, 1_000])
def test_heartbeat_not_newer_than_the_last_one_is_ignored(at: int) -> None:
    before, _ = run(opened("c1", 0), heartbeat("c1", 1_000))

    assert_noop(before, heartbeat("c1", at))


# channel.joined / channel.left


def test_channel_joined_announces_member_joined() -> None:
    before, _ = run(opened("c1", 0))
    e = joined("c1", "room", 10)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(connection("c1", 0, channels=("room",), last_active=10),),
                           channel_since={"room": 10}, last_seen=10)
    assert changes == [MemberJoined(change_id=cid(e, 0), user_id="u", at=10, channel="room",
                                    member=view(joined_at=10, last_seen=10))]


def test_channel_joined_again_by_the_same_connection_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))

    assert_noop(before, joined("c1", "room", 20))


def test_channel_left_by_one_of_two_connections_keeps_the_user_in_the_channel() -> None:
    before, _ = run(opened("c1", 0), opened("c2", 5), joined("c1", "room", 10), joined("c2", "room", 20))
    e = left("c1", "room", 30)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(connection("c1", 0, last_active=30),
                                                   connection("c2", 5, channels=("room",), last_active=20)),
                           last_seen=30)
    assert state.channel_since == {"room": 10}
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, connections=1))]


def test_channel_left_by_the_last_connection_announces_member_left() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), joined("c1", "lobby", 15))
    e = left("c1", "room", 30)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(connection("c1", 0, channels=("lobby",), last_active=30),),
                           channel_since={"lobby": 15}, last_seen=30)
    assert state.online
    assert changes == [MemberLeft(change_id=cid(e, 0), user_id="u", at=30, channel="room", reason="leave",
                                  last_seen=30)]


def test_channel_left_without_having_joined_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))

    assert_noop(before, left("c1", "lobby", 20))


def test_channel_joined_again_after_leaving_gets_a_new_joined_at() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), left("c1", "room", 20))
    e = joined("c1", "room", 30)

    state, changes = apply(before, e)

    assert state.channel_since == {"room": 30}
    assert changes == [MemberJoined(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                    member=view(joined_at=30, last_seen=30))]


# presence.updated


def test_presence_updated_status_announces_status_change_and_updates_every_channel() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "b", 10), joined("c1", "a", 20))
    e = updated(30, status="away")

    state, changes = apply(before, e)

    assert state == expect(before, e, status="away", last_seen=30,
                           connections=(connection("c1", 0, channels=("b", "a"), last_active=30),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=30, status="away", previous="online"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=30, channel="a",
                      member=view(joined_at=20, last_seen=30, status="away")),
        MemberUpdated(change_id=cid(e, 2), user_id="u", at=30, channel="b",
                      member=view(joined_at=10, last_seen=30, status="away")),
    ]


def test_presence_updated_metadata_updates_every_channel() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = updated(30, metadata={"typing": True})

    state, changes = apply(before, e)

    assert state == expect(before, e, metadata={"typing": True}, last_seen=30,
                           connections=(connection("c1", 0, channels=("room",), last_active=30),))
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, metadata={"typing": True}))]


@pytest.mark.parametrize("update", [{"status": "online"}, {"metadata": {}}, {}])
def test_presence_updated_without_a_difference_is_ignored(update: dict[str, Any]) -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))

    assert_noop(before, updated(30, **update))


def test_presence_updated_while_offline_is_kept_without_announcement() -> None:
    before, _ = run(opened("c1", 0), closed("c1", 10))
    e = updated(20, status="away")

    state, changes = apply(before, e)

    assert changes == []
    assert state == expect(before, e, status="away", last_seen=20)
    assert state.public_status == "offline"


# Events that do not fit the state.


@pytest.mark.parametrize("event", [
    closed("ghost", 100),
    dropped("ghost", 100),
    timed_out("ghost", 100_000),
    heartbeat("ghost", 100),
    joined("ghost", "room", 100),
    left("ghost", "room", 100),
], ids=lambda e: e.type)
def test_events_for_unknown_connections_are_ignored(event: Event) -> None:
    online, _ = run(opened("c1", 0), joined("c1", "room", 10))

    assert_noop(online, event)
    assert_noop(None, event)


def test_connection_opened_again_for_a_known_connection_is_ignored() -> None:
    before, _ = run(opened("c1", 0))

    assert_noop(before, opened("c1", 50, status="away", eid="reopen"))


# due_events: connection timeouts (typing, status and idle expiries: test_core_typing.py, test_core_status.py,
# test_core_idle.py; all at once: test_core_timeouts.py)


def test_due_events_lists_only_overdue_connections_with_ids_from_the_deadline() -> None:
    state, _ = run(opened("c1", 0), opened("c2", 10_000), opened("c3", 0), dropped("c3", 1_000))

    due = due_events(state, 30_000, "sweeper")

    assert due == [
        ConnectionTimedOut(event_id="connection.timed_out:u:c1:30000", user_id="u", connection_id="c1",
                           edge_id="sweeper", at=30_000),
        ConnectionTimedOut(event_id="connection.timed_out:u:c3:6000", user_id="u", connection_id="c3",
                           edge_id="sweeper", at=30_000),
    ]
    assert due_events(state, 5_999, "sweeper") == []


def test_due_events_twice_gives_the_same_ids_and_the_second_changes_nothing() -> None:
    state, _ = run(opened("c1", 0))

    [first] = due_events(state, 31_000, "sweeper-a")
    [second] = due_events(state, 32_000, "sweeper-b")
    assert first.event_id == second.event_id

    state, changes = apply(state, first)
    assert [type(c) for c in changes] == [UserWentOffline]
    assert_noop(state, second)


def test_due_events_after_a_heartbeat_gives_a_new_id() -> None:
    state, _ = run(opened("c1", 0))
    [before] = due_events(state, 30_000, "sweeper")

    state, _ = apply(state, heartbeat("c1", 1_000))
    [after] = due_events(state, 31_000, "sweeper")

    assert before.event_id == "connection.timed_out:u:c1:30000"
    assert after.event_id == "connection.timed_out:u:c1:31000"


# Determinism, idempotency, change ids.

SCENARIO: tuple[Event, ...] = (
    opened("c1", 0),
    joined("c1", "room", 10),
    opened("c2", 20, status="busy"),
    joined("c2", "room", 30),
    joined("c2", "lobby", 40),
    updated(50, status="away", metadata={"mood": "ok"}),
    heartbeat("c1", 60),
    dropped("c2", 70),
    left("c1", "room", 80),
    timed_out("c2", 5_070),
    closed("c1", 6_000),
    opened("c3", 7_000),
)


def test_applying_the_same_events_twice_gives_equal_states_and_changes() -> None:
    first = run(*SCENARIO)
    second = run(*SCENARIO)

    assert first == second
    assert len(first[1]) > 5  # the scenario is not trivially quiet


def test_change_ids_are_the_event_id_and_a_counter() -> None:
    state: UserPresence | None = None
    for event in SCENARIO:
        state, changes = apply(state, event)
        assert [c.change_id for c in changes] == [cid(event, n) for n in range(len(changes))]


@pytest.mark.parametrize("index", range(len(SCENARIO)))
def test_event_redelivered_immediately_changes_nothing(index: int) -> None:
    state, _ = run(*SCENARIO[: index + 1])

    assert_noop(state, SCENARIO[index])


def test_channel_joined_redelivered_after_channel_left_changes_nothing() -> None:
    join = joined("c1", "room", 10)
    state, _ = run(opened("c1", 0), join, left("c1", "room", 20))

    assert_noop(state, join)


def test_presence_updated_redelivered_after_a_later_update_changes_nothing() -> None:
    away = updated(10, status="away")
    state, _ = run(opened("c1", 0), joined("c1", "room", 5), away, updated(20, status="online"))

    assert_noop(state, away)
    assert state.status == "online"


def test_connection_opened_redelivered_after_close_changes_nothing() -> None:
    open_ = opened("c1", 0)
    state, _ = run(open_, closed("c1", 10))

    assert_noop(state, open_)
    assert not state.online


def test_connection_closed_redelivered_after_reopen_changes_nothing() -> None:
    close = closed("c1", 10)
    state, _ = run(opened("c1", 0), close, opened("c1", 20))

    assert_noop(state, close)
    assert state.online

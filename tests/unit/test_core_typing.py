"""Typing indicators in the presence core: one test per rule, each checking the state and the exact changes."""

from __future__ import annotations

from schemas.changes import MemberJoined, MemberLeft, MemberTyping, MemberUpdated, UserCameOnline, UserWentOffline
from schemas.events import TypingExpired
from streams.core import apply, due_events
from tests.unit.test_core import (
    assert_noop,
    cid,
    closed,
    connection,
    expect,
    joined,
    left,
    opened,
    run,
    typing_expired,
    typing_started,
    typing_stopped,
    updated,
    view,
)


def typing(at: int, channel: str = "room", *, on: bool, eid: str) -> MemberTyping:
    return MemberTyping(change_id=eid, user_id="u", at=at, channel=channel, typing=on)


# typing.started


def test_typing_started_in_a_joined_channel_announces_member_typing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = typing_started("c1", "room", 20, expires_at=5_020)

    state, changes = apply(before, e)

    assert state == expect(before, e, typing={"room": 5_020}, last_seen=20,
                           connections=(connection("c1", 0, channels=("room",), last_active=20),))
    assert changes == [typing(20, on=True, eid=cid(e, 0))]


def test_typing_started_again_extends_the_indicator_and_announces_nothing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    e = typing_started("c1", "room", 3_000, expires_at=8_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, typing={"room": 8_000}, last_seen=3_000,
                           connections=(connection("c1", 0, channels=("room",), last_active=3_000),))
    assert changes == []


def test_typing_started_with_an_expiry_not_later_than_the_current_one_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))

    assert_noop(before, typing_started("c1", "room", 30, expires_at=5_020))
    assert_noop(before, typing_started("c1", "room", 40, expires_at=4_000))


def test_typing_started_in_a_channel_not_joined_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))

    assert_noop(before, typing_started("c1", "lobby", 20, expires_at=5_020))


def test_typing_started_by_a_connection_not_in_the_channel_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), opened("c2", 15))

    assert_noop(before, typing_started("c2", "room", 20, expires_at=5_020))


def test_typing_started_by_an_unknown_connection_or_while_offline_is_ignored() -> None:
    online, _ = run(opened("c1", 0), joined("c1", "room", 10))
    offline, _ = run(opened("c1", 0), joined("c1", "room", 10), closed("c1", 15))

    assert_noop(online, typing_started("ghost", "room", 20, expires_at=5_020))
    assert_noop(offline, typing_started("c1", "room", 20, expires_at=5_020))
    assert_noop(None, typing_started("c1", "room", 20, expires_at=5_020))


# typing.stopped


def test_typing_stopped_announces_member_typing_off() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    e = typing_stopped("c1", "room", 1_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, typing={}, last_seen=1_000,
                           connections=(connection("c1", 0, channels=("room",), last_active=1_000),))
    assert changes == [typing(1_000, on=False, eid=cid(e, 0))]


def test_typing_stopped_while_not_typing_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), joined("c1", "lobby", 15),
                    typing_started("c1", "room", 20, expires_at=5_020))

    assert_noop(before, typing_stopped("c1", "lobby", 1_000))


# typing.expired


def test_typing_expired_at_the_expiry_announces_member_typing_off_without_activity() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    e = typing_expired("room", 5_020, deadline=5_020)

    state, changes = apply(before, e)

    # The sweeper is not the user: last seen and last activity stay where they were.
    assert state == expect(before, e, typing={})
    assert state.last_seen == 20
    assert changes == [typing(5_020, on=False, eid=cid(e, 0))]


def test_typing_expired_before_the_expiry_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))

    assert_noop(before, typing_expired("room", 5_019, deadline=5_020))


def test_typing_renewed_after_the_sweep_wins_over_the_expiry() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    [expiry] = [e for e in due_events(before, 5_100, "sweeper") if isinstance(e, TypingExpired)]
    renewed, changes = apply(before, typing_started("c1", "room", 5_000, expires_at=10_000))
    assert changes == []

    assert_noop(renewed, expiry)
    assert apply(renewed, expiry)[0].typing == {"room": 10_000}


def test_typing_expired_after_typing_stopped_is_ignored() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020),
                    typing_stopped("c1", "room", 30))

    assert_noop(before, typing_expired("room", 6_000, deadline=5_020))


def test_due_events_lists_typing_expiries_by_channel_with_ids_from_the_expiry() -> None:
    state, _ = run(opened("c1", 0, timeout=10**9), joined("c1", "b", 10), joined("c1", "a", 20),
                   joined("c1", "c", 25), typing_started("c1", "b", 30, expires_at=5_000),
                   typing_started("c1", "a", 40, expires_at=4_000), typing_started("c1", "c", 50, expires_at=9_000))

    assert due_events(state, 5_000, "sweeper") == [
        TypingExpired(event_id="typing.expired:u::a:4000", user_id="u", connection_id="", edge_id="sweeper",
                      at=5_000, channel="a"),
        TypingExpired(event_id="typing.expired:u::b:5000", user_id="u", connection_id="", edge_id="sweeper",
                      at=5_000, channel="b"),
    ]
    assert due_events(state, 3_999, "sweeper") == []


# Leaving, disconnecting, invisible.


def test_channel_left_clears_typing_with_member_left_only() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    e = left("c1", "room", 30)

    state, changes = apply(before, e)

    assert state == expect(before, e, typing={}, channel_since={}, last_seen=30,
                           connections=(connection("c1", 0, last_active=30),))
    # The channel stage drops the indicator with the member: no member.typing off is needed.
    assert changes == [MemberLeft(change_id=cid(e, 0), user_id="u", at=30, channel="room", reason="leave",
                                  last_seen=30)]


def test_channel_left_by_one_of_two_connections_keeps_typing() -> None:
    before, _ = run(opened("c1", 0), opened("c2", 5), joined("c1", "room", 10), joined("c2", "room", 15),
                    typing_started("c1", "room", 20, expires_at=5_020))
    e = left("c1", "room", 30)

    state, changes = apply(before, e)

    assert state == expect(before, e, last_seen=30, connections=(
        connection("c1", 0, last_active=30), connection("c2", 5, channels=("room",), last_active=15),
    ))
    assert state.typing == {"room": 5_020}  # the user is still in the channel
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, connections=1))]


def test_connection_closed_clears_typing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    e = closed("c1", 30)

    state, changes = apply(before, e)

    assert state == expect(before, e, connections=(), typing={}, channel_since={}, last_seen=30)
    assert changes == [
        MemberLeft(change_id=cid(e, 0), user_id="u", at=30, channel="room", reason="leave", last_seen=30),
        UserWentOffline(change_id=cid(e, 1), user_id="u", at=30, reason="leave", last_seen=30),
    ]


def test_typing_of_an_invisible_user_is_hidden_and_shown_when_visible_again() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020))
    hide = updated(30, status="invisible", visible=False)

    hidden, changes = apply(before, hide)

    assert hidden.typing == {"room": 5_020}  # kept, only not shown
    assert changes == [
        MemberLeft(change_id=cid(hide, 0), user_id="u", at=30, channel="room", reason="leave", last_seen=30),
        UserWentOffline(change_id=cid(hide, 1), user_id="u", at=30, reason="leave", last_seen=30),
    ]

    state, changes = run(typing_stopped("c1", "room", 40), typing_started("c1", "room", 50, expires_at=6_000),
                         state=hidden)
    assert state.typing == {"room": 6_000}
    assert changes == []  # nothing of an invisible user's typing is announced

    show = updated(60, status="online")
    state, changes = apply(state, show)

    assert changes == [
        UserCameOnline(change_id=cid(show, 0), user_id="u", at=60, status="online"),
        MemberJoined(change_id=cid(show, 1), user_id="u", at=60, channel="room",
                     member=view(joined_at=10, last_seen=60)),
        typing(60, on=True, eid=cid(show, 2)),
    ]


def test_typing_expired_of_an_invisible_user_announces_nothing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), typing_started("c1", "room", 20, expires_at=5_020),
                    updated(30, status="invisible", visible=False))
    e = typing_expired("room", 5_020, deadline=5_020)

    state, changes = apply(before, e)

    assert state == expect(before, e, typing={})
    assert changes == []

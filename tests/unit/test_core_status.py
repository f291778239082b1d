"""Statuses in the presence core: text and emoji, expiring statuses, invisible, devices and `user_view`."""

from __future__ import annotations

import pytest

from schemas.changes import (
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    UserCameOnline,
    UserStatusChanged,
    UserView,
    UserWentOffline,
)
from schemas.events import StatusExpired
from streams.core import apply, due_events, user_view
from tests.unit.test_core import (
    assert_noop,
    cid,
    closed,
    connection,
    expect,
    joined,
    opened,
    run,
    status_expired,
    updated,
    view,
)

# Status text and emoji.


def test_presence_updated_status_text_and_emoji_update_every_channel() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = updated(30, text="lunch", emoji=":pizza:")

    state, changes = apply(before, e)

    assert state == expect(before, e, status_text="lunch", status_emoji=":pizza:", last_seen=30,
                           connections=(connection("c1", 0, channels=("room",), last_active=30),))
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, text="lunch", emoji=":pizza:"))]


def test_presence_updated_empty_status_text_and_emoji_clear_them() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(20, text="lunch", emoji=":pizza:"))
    e = updated(30, text="", emoji="")

    state, changes = apply(before, e)

    assert state == expect(before, e, status_text=None, status_emoji=None, last_seen=30,
                           connections=(connection("c1", 0, channels=("room",), last_active=30),))
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30))]


def test_presence_updated_emoji_alone_keeps_the_text() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(20, text="lunch", emoji=":pizza:"))
    e = updated(30, emoji=":taco:")

    state, changes = apply(before, e)

    assert (state.status_text, state.status_emoji) == ("lunch", ":taco:")
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, text="lunch", emoji=":taco:"))]


@pytest.mark.parametrize("update", [{"text": "lunch"}, {"emoji": ":pizza:"}, {"text": "lunch", "emoji": ":pizza:"}])
def test_presence_updated_with_the_same_text_and_emoji_is_ignored(update: dict[str, str]) -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(20, text="lunch", emoji=":pizza:"))

    assert_noop(before, updated(30, **update))


def test_presence_updated_text_while_offline_is_kept_and_shown_when_coming_online() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), closed("c1", 20))
    e = updated(30, text="back soon")

    state, changes = apply(before, e)

    assert state == expect(before, e, status_text="back soon", last_seen=30)
    assert changes == []
    state, _ = run(opened("c2", 40), joined("c2", "room", 50), state=state)
    assert user_view(state).status_text == "back soon"


# Expiring statuses.


def test_presence_updated_with_expires_at_stores_the_expiry() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10))
    e = updated(30, status="busy", text="meeting", expires_at=60_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, status="busy", status_text="meeting", status_expires_at=60_000, last_seen=30,
                           connections=(connection("c1", 0, channels=("room",), last_active=30),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=30, status="busy", previous="online"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=30, channel="room",
                      member=view(joined_at=10, last_seen=30, status="busy", text="meeting")),
    ]


def test_due_events_lists_the_status_expiry_with_an_id_from_the_expiry() -> None:
    state, _ = run(opened("c1", 0, timeout=10**9), updated(30, status="busy", expires_at=60_000))

    assert due_events(state, 59_999, "sweeper") == []
    assert due_events(state, 61_000, "sweeper") == [
        StatusExpired(event_id="status.expired:u::60000", user_id="u", connection_id="", edge_id="sweeper",
                      at=61_000),
    ]


def test_status_expired_reverts_to_online_and_clears_the_text() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10),
                    updated(30, status="busy", text="meeting", emoji=":calendar:", expires_at=60_000))
    e = status_expired(60_000, deadline=60_000)

    state, changes = apply(before, e)

    # Not an activity of the user: last seen stays.
    assert state == expect(before, e, status="online", status_text=None, status_emoji=None,
                           status_expires_at=None)
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=60_000, status="online", previous="busy"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=60_000, channel="room",
                      member=view(joined_at=10, last_seen=30)),
    ]


def test_status_expired_before_the_expiry_is_ignored() -> None:
    before, _ = run(opened("c1", 0), updated(30, status="busy", expires_at=60_000))

    assert_noop(before, status_expired(59_999, deadline=60_000))


def test_status_expired_while_offline_reverts_without_announcement() -> None:
    before, _ = run(opened("c1", 0), updated(30, status="busy", text="meeting", expires_at=60_000), closed("c1", 40))
    e = status_expired(60_000, deadline=60_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, status="online", status_text=None, status_expires_at=None)
    assert changes == []


def test_a_later_status_update_cancels_the_pending_expiry() -> None:
    before, _ = run(opened("c1", 0, timeout=10**9), joined("c1", "room", 10),
                    updated(30, status="busy", expires_at=60_000))
    [expiry] = due_events(before, 60_000, "sweeper")
    e = updated(50_000, status="away")

    state, changes = apply(before, e)

    assert state == expect(before, e, status="away", status_expires_at=None, last_seen=50_000,
                           connections=(connection("c1", 0, channels=("room",), last_active=50_000,
                                                   timeout=10**9),))
    assert changes == [
        UserStatusChanged(change_id=cid(e, 0), user_id="u", at=50_000, status="away", previous="busy"),
        MemberUpdated(change_id=cid(e, 1), user_id="u", at=50_000, channel="room",
                      member=view(joined_at=10, last_seen=50_000, status="away")),
    ]
    assert due_events(state, 10**8, "sweeper") == []
    assert_noop(state, expiry)


def test_a_later_status_update_with_a_new_expiry_wins_over_a_sweep_of_the_old_one() -> None:
    before, _ = run(opened("c1", 0, timeout=10**9), updated(30, status="busy", expires_at=60_000))
    [expiry] = due_events(before, 60_000, "sweeper")
    state, _ = apply(before, updated(59_000, status="busy", text="longer", expires_at=90_000))

    assert_noop(state, expiry)
    assert [e.event_id for e in due_events(state, 90_000, "sweeper")] == ["status.expired:u::90000"]


# Invisible.


def test_presence_updated_invisible_looks_like_leaving_every_channel_and_going_offline() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "b", 10), joined("c1", "a", 20))
    e = updated(30, status="invisible", visible=False)

    state, changes = apply(before, e)

    assert state == expect(before, e, status="invisible", visible=False, last_seen=30,
                           connections=(connection("c1", 0, channels=("b", "a"), last_active=30),))
    assert state.online
    assert state.public_status == "offline"
    assert changes == [
        MemberLeft(change_id=cid(e, 0), user_id="u", at=30, channel="a", reason="leave", last_seen=30),
        MemberLeft(change_id=cid(e, 1), user_id="u", at=30, channel="b", reason="leave", last_seen=30),
        UserWentOffline(change_id=cid(e, 2), user_id="u", at=30, reason="leave", last_seen=30),
    ]


def test_presence_updated_visible_again_looks_like_coming_online_and_joining() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(30, status="invisible", visible=False))
    e = updated(40, status="busy")

    state, changes = apply(before, e)

    assert state == expect(before, e, status="busy", visible=True, last_seen=40,
                           connections=(connection("c1", 0, channels=("room",), last_active=40),))
    assert changes == [
        UserCameOnline(change_id=cid(e, 0), user_id="u", at=40, status="busy"),
        MemberJoined(change_id=cid(e, 1), user_id="u", at=40, channel="room",
                     member=view(joined_at=10, last_seen=40, status="busy")),
    ]


def test_an_invisible_user_connects_joins_and_leaves_without_announcements() -> None:
    before, _ = run(opened("c1", 0), updated(10, status="invisible", visible=False), closed("c1", 20))

    state, changes = run(opened("c2", 30), joined("c2", "room", 40), updated(50, text="hidden", conn="c2"),
                         closed("c2", 60), state=before)

    assert changes == []
    assert (state.status, state.visible, state.status_text) == ("invisible", False, "hidden")
    assert user_view(state) == UserView(user_id="u", status="offline", online=False, last_seen=10, connections=0)


def test_presence_updated_text_alone_keeps_an_invisible_user_invisible() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(20, status="invisible", visible=False))
    e = updated(30, text="shh")

    state, changes = apply(before, e)

    assert (state.status, state.visible, state.status_text) == ("invisible", False, "shh")
    assert changes == []


def test_an_expiring_invisible_status_makes_the_user_visible_again() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10),
                    updated(20, status="invisible", visible=False, expires_at=60_000))
    e = status_expired(60_000, deadline=60_000)

    state, changes = apply(before, e)

    assert state == expect(before, e, status="online", visible=True, status_expires_at=None)
    assert changes == [
        UserCameOnline(change_id=cid(e, 0), user_id="u", at=60_000, status="online"),
        MemberJoined(change_id=cid(e, 1), user_id="u", at=60_000, channel="room",
                     member=view(joined_at=10, last_seen=20)),
    ]


def test_an_invisible_user_that_times_out_announces_nothing() -> None:
    before, _ = run(opened("c1", 0), joined("c1", "room", 10), updated(20, status="invisible", visible=False))

    state, changes = run(*due_events(before, 30_000, "sweeper"), state=before)

    assert not state.online
    assert changes == []


# Devices.


def test_member_shows_the_devices_of_its_connections_in_the_channel() -> None:
    before, _ = run(opened("c1", 0, device="phone"), joined("c1", "room", 10), opened("c2", 20, device="desktop"),
                    opened("c3", 25, device="tablet"))
    e = joined("c2", "room", 30)

    state, changes = apply(before, e)

    assert state.connections[1] == connection("c2", 20, channels=("room",), last_active=30, device="desktop")
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=30, channel="room",
                                     member=view(joined_at=10, last_seen=30, connections=2,
                                                 devices=("desktop", "phone")))]


# connection.opened metadata


def test_connection_opened_with_metadata_replaces_it_and_updates_channels() -> None:
    before, _ = run(opened("c1", 0, metadata={"app": "web"}), joined("c1", "room", 10))
    e = opened("c2", 20, metadata={"app": "ios"})

    state, changes = apply(before, e)

    assert state == expect(before, e, metadata={"app": "ios"}, last_seen=20,
                           connections=(*before.connections, connection("c2", 20)))
    assert changes == [MemberUpdated(change_id=cid(e, 0), user_id="u", at=20, channel="room",
                                     member=view(joined_at=10, last_seen=20, metadata={"app": "ios"}))]


def test_connection_opened_without_metadata_keeps_the_stored_one() -> None:
    before, _ = run(opened("c1", 0, metadata={"app": "web"}), joined("c1", "room", 10))
    e = opened("c2", 20)

    state, changes = apply(before, e)

    assert state.metadata == {"app": "web"}
    assert changes == []


# user_view


def test_user_view_of_a_visible_user_shows_devices_and_status_text() -> None:
    state, _ = run(opened("c1", 0, device="phone", metadata={"app": "ios"}), opened("c2", 10, device="desktop"),
                   opened("c3", 15), updated(20, status="busy", text="meeting", emoji=":calendar:",
                                             expires_at=60_000))

    assert user_view(state, "updated@20") == UserView(
        user_id="u", status="busy", online=True, last_seen=20, connections=3, devices=("desktop", "phone"),
        metadata={"app": "ios"}, status_text="meeting", status_emoji=":calendar:", status_expires_at=60_000,
        event_id="updated@20",
    )


def test_user_view_of_an_idle_user_shows_away() -> None:
    state, _ = run(opened("c1", 0, idle_after=60_000, timeout=10**9))
    state, _ = run(*due_events(state, 60_000, "sweeper"), state=state)

    assert user_view(state) == UserView(user_id="u", status="away", online=True, last_seen=0, connections=1)


def test_user_view_of_an_invisible_user_looks_offline() -> None:
    state, _ = run(opened("c1", 0, device="phone", metadata={"app": "ios"}),
                   updated(20, status="invisible", visible=False, text="hidden", emoji=":ghost:", expires_at=60_000))

    assert user_view(state, "x") == UserView(
        user_id="u", status="offline", online=False, last_seen=20, connections=0, devices=(),
        metadata={"app": "ios"}, status_text=None, status_emoji=None, status_expires_at=None, event_id="x",
    )


def test_user_view_of_an_offline_user() -> None:
    state, _ = run(opened("c1", 0, device="phone"), updated(10, text="gone"), closed("c1", 20))

    assert user_view(state) == UserView(user_id="u", status="offline", online=False, last_seen=20, connections=0)


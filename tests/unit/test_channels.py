"""The pure channel core: member changes folded into channel views."""

from __future__ import annotations

from schemas.changes import (
    ChannelExpired,
    ChannelView,
    Departure,
    Member,
    MemberChange,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    OfflineReason,
)
from schemas.state import AppliedSource, ChannelState
from streams.channels import SEQ_PER_MS, apply_member_change

CHANNEL = "room"
BASE = 10 * SEQ_PER_MS  # a life starts at SEQ_PER_MS times the time of its first change (at 10 here)


def member(user: str, *, status: str = "online", connections: int = 1, joined_at: int = 10) -> Member:
    return Member(user_id=user, status=status, joined_at=joined_at, last_seen=joined_at, connections=connections)


# A change's `source` is where its event is in `presence.events`; here each user's events are at
# the offset equal to their time, so a user's sources grow with `at` as they do in the log.
Source = tuple[int, ...] | None


def join(user: str, at: int, *, connections: int = 1, cid: str | None = None, source: Source = None) -> MemberJoined:
    return MemberJoined(change_id=cid or f"join:{user}@{at}/0", user_id=user, at=at, channel=CHANNEL,
                        member=member(user, joined_at=at, connections=connections), source=source or (at, 0, 0))


def update(user: str, at: int, *, status: str = "online", joined_at: int = 10, cid: str | None = None,
           source: Source = None) -> MemberUpdated:
    return MemberUpdated(change_id=cid or f"update:{user}@{at}/0", user_id=user, at=at, channel=CHANNEL,
                         member=member(user, joined_at=joined_at, status=status), source=source or (at, 0, 0))


def leave(user: str, at: int, *, reason: OfflineReason = "leave", cid: str | None = None,
          source: Source = None) -> MemberLeft:
    return MemberLeft(change_id=cid or f"leave:{user}@{at}/0", user_id=user, at=at, channel=CHANNEL,
                      reason=reason, last_seen=at, source=source or (at, 0, 0))


def typing(user: str, at: int, *, on: bool = True, cid: str | None = None) -> MemberTyping:
    return MemberTyping(change_id=cid or f"typing:{user}@{at}/0", user_id=user, at=at, channel=CHANNEL, typing=on,
                        source=(at, 0, 0))


def fold(*changes: MemberChange) -> tuple[ChannelState, list[ChannelView]]:
    state: ChannelState | None = None
    views: list[ChannelView] = []
    for change in changes:
        state, view = apply_member_change(state, change)
        if view is not None:
            views.append(view)
    assert state is not None
    return state, views


def test_first_join_publishes_the_first_seq_of_a_life_with_the_join_and_the_members() -> None:
    change = join("u1", 10)

    state, view = apply_member_change(None, change)

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 1, at=10, members=(member("u1"),), joins=(member("u1"),))
    assert state == ChannelState(channel=CHANNEL, seq=BASE + 1, members=(member("u1"),),
                                 applied_sources={"u1": AppliedSource(source=(10, 0, 0), at=10)}, changed_at=10)


def test_update_of_a_present_member_publishes_the_update() -> None:
    before, _ = fold(join("u1", 10), join("u2", 20))
    change = update("u1", 30, status="away")
    away = member("u1", status="away")

    state, view = apply_member_change(before, change)

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 3, at=30, members=(away, member("u2", joined_at=20)),
                               updates=(away,))
    assert state.members == view.members
    assert state.seq == BASE + 3


def test_join_of_a_present_member_with_a_new_view_publishes_an_update() -> None:
    before, _ = fold(join("u1", 10))

    _, view = apply_member_change(before, join("u1", 10, cid="again/0", connections=2, source=(11, 0, 0)))

    assert view is not None
    assert view.joins == ()
    assert view.updates == (member("u1", connections=2),)


def test_leave_publishes_the_departure_with_reason_and_last_seen() -> None:
    before, _ = fold(join("u1", 10), join("u2", 20))

    state, view = apply_member_change(before, leave("u1", 40, reason="timeout"))

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 3, at=40, members=(member("u2", joined_at=20),),
                               leaves=(Departure(user_id="u1", reason="timeout", last_seen=40),))
    assert state.members == (member("u2", joined_at=20),)


def test_leave_of_an_absent_user_changes_nothing() -> None:
    before, _ = fold(join("u1", 10))

    state, view = apply_member_change(before, leave("u2", 40))

    assert view is None
    assert state == before


def test_update_of_an_absent_user_changes_nothing() -> None:
    before, _ = fold(join("u1", 10), leave("u2", 15))

    state, view = apply_member_change(before, update("u2", 40, status="away"))

    assert view is None
    assert state == before
    assert state.seq == BASE + 1


def test_a_change_again_at_a_source_already_applied_is_ignored() -> None:
    first_join = join("u1", 10)
    before, _ = fold(first_join, leave("u1", 20))

    state, view = apply_member_change(before, first_join)

    assert view is None
    assert state == before
    assert state.members == ()


def test_seq_increases_by_one_per_published_view() -> None:
    _, views = fold(
        join("u1", 10),
        leave("u9", 11),  # absent: no view
        join("u2", 20),
        update("u1", 30, status="away"),
        update("u1", 30, status="away"),  # same change id: no view
        leave("u2", 40),
        join("u2", 50),
    )

    assert [v.seq for v in views] == [BASE + 1, BASE + 2, BASE + 3, BASE + 4, BASE + 5]


def test_members_are_sorted_by_user_id() -> None:
    state, views = fold(join("u3", 10), join("u1", 20), join("u2", 30))

    assert [m.user_id for m in state.members] == ["u1", "u2", "u3"]
    assert [[m.user_id for m in v.members] for v in views] == [["u3"], ["u1", "u3"], ["u1", "u2", "u3"]]


# member.typing


def test_typing_of_a_member_publishes_the_typing_set() -> None:
    before, _ = fold(join("u2", 10), join("u1", 20))
    change = typing("u2", 30)

    state, view = apply_member_change(before, change)

    members = (member("u1", joined_at=20), member("u2"))
    assert view == ChannelView(channel=CHANNEL, seq=BASE + 3, at=30, members=members, typing=("u2",))
    assert state == ChannelState(channel=CHANNEL, seq=BASE + 3, members=members, typing=("u2",),
                                 applied_sources={**before.applied_sources,
                                                  "u2": AppliedSource(source=(30, 0, 0), at=30)},
                                 changed_at=30)


def test_typing_views_carry_the_whole_sorted_typing_set() -> None:
    _, views = fold(join("u3", 10), join("u1", 20), join("u2", 30), typing("u3", 40), typing("u1", 50),
                    typing("u3", 60, on=False), typing("u2", 70))

    # Replace semantics: each view has everyone typing after it, not a diff.
    assert [v.typing for v in views] == [(), (), (), ("u3",), ("u1", "u3"), ("u1",), ("u1", "u2")]
    assert [(v.joins, v.leaves, v.updates) for v in views[3:]] == [((), (), ())] * 4


def test_typing_off_publishes_the_smaller_set() -> None:
    before, _ = fold(join("u1", 10), join("u2", 20), typing("u1", 30), typing("u2", 40))

    state, view = apply_member_change(before, typing("u1", 50, on=False))

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 5, at=50, members=before.members, typing=("u2",))
    assert state.typing == ("u2",)


def test_typing_that_does_not_change_the_set_changes_nothing() -> None:
    before, _ = fold(join("u1", 10), join("u2", 20), typing("u1", 30))

    for change in (typing("u1", 40), typing("u2", 50, on=False)):
        state, view = apply_member_change(before, change)
        assert view is None
        assert state == before


def test_typing_of_a_non_member_is_ignored() -> None:
    before, _ = fold(join("u1", 10), leave("u2", 15))

    for change in (typing("u2", 20), typing("u9", 30), typing("u9", 40, on=False)):
        state, view = apply_member_change(before, change)
        assert view is None
        assert state == before


def test_typing_before_the_first_join_leaves_the_channel_empty() -> None:
    state, view = apply_member_change(None, typing("u1", 10))

    assert view is None
    assert state is None


def test_leave_of_a_typing_member_removes_it_from_the_typing_set() -> None:
    before, _ = fold(join("u1", 10), join("u2", 20), typing("u1", 30), typing("u2", 40))

    state, view = apply_member_change(before, leave("u1", 50))

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 5, at=50, members=(member("u2", joined_at=20),),
                               leaves=(Departure(user_id="u1", reason="leave", last_seen=50),), typing=("u2",))
    assert state.typing == ("u2",)

    # Back in the channel, the member is not typing until told so.
    state, view = apply_member_change(state, join("u1", 60))
    assert view is not None
    assert view.typing == ("u2",)


def test_update_of_a_typing_member_keeps_it_typing() -> None:
    before, _ = fold(join("u1", 10), typing("u1", 20))

    state, view = apply_member_change(before, update("u1", 30, status="away"))

    assert view == ChannelView(channel=CHANNEL, seq=BASE + 3, at=30, members=(member("u1", status="away"),),
                               updates=(member("u1", status="away"),), typing=("u1",))
    assert state.typing == ("u1",)


def test_a_typing_change_again_is_ignored() -> None:
    on = typing("u1", 20)
    before, _ = fold(join("u1", 10), on, typing("u1", 30, on=False))

    state, view = apply_member_change(before, on)

    assert view is None
    assert state == before
    assert state.typing == ()


# channel.expired


def expired(empty_since: int, at: int) -> ChannelExpired:
    return ChannelExpired(change_id=f"expired:{CHANNEL}@{empty_since}", user_id="", at=at, channel=CHANNEL,
                          empty_since=empty_since)


def test_a_channel_empty_since_the_expiry_says_is_forgotten() -> None:
    before, _ = fold(join("u1", 10), leave("u1", 20))

    assert apply_member_change(before, expired(empty_since=20, at=5000)) == (None, None)


def test_an_expiry_of_a_channel_that_changed_since_or_has_members_changes_nothing() -> None:
    emptied_twice, _ = fold(join("u1", 10), leave("u1", 20), join("u1", 30), leave("u1", 40))
    occupied, _ = fold(join("u1", 10))

    assert apply_member_change(emptied_twice, expired(empty_since=20, at=5000)) == (emptied_twice, None)
    assert apply_member_change(occupied, expired(empty_since=10, at=5000)) == (occupied, None)
    assert apply_member_change(None, expired(empty_since=10, at=5000)) == (None, None)


def test_a_new_life_continues_above_every_seq_of_the_old_one() -> None:
    old, old_views = fold(*(change for n in range(500)
                            for change in (join(f"u{n}", 10 + n), leave(f"u{n}", 10 + n, source=(10 + n, 1, 0)))))
    assert old_views[-1].seq == BASE + 1000
    assert apply_member_change(old, expired(empty_since=old.changed_at, at=2000))[0] is None

    state, view = apply_member_change(None, join("u1", 2000))

    assert view is not None and view.seq == 2000 * SEQ_PER_MS + 1 > old_views[-1].seq
    assert view.members == view.joins == (member("u1", joined_at=2000),)

"""Who may read whom (services/visibility.py): the rule, one row per kind of reader."""

from __future__ import annotations

from collections.abc import Set

import pytest

from schemas.changes import UserView
from services.auth import Principal
from services.visibility import may_read, readable_view, visible_channels

PRESENT_IN = {"ann": {"lobby", "team:red"}, "bob": {"lobby"}, "cid": {"team:blue"}}


def channels_of(user_id: str) -> Set[str]:
    return PRESENT_IN.get(user_id, frozenset())


def user(user_id: str, read_users: tuple[str, ...] = (), channels: tuple[str, ...] | None = None) -> Principal:
    return Principal(user_id=user_id, channels=channels, read_users=read_users)


SERVICE = Principal(user_id="", channels=None, service="backend")

RULE = [
    # reader, user read, may read
    (user("ann"), "ann", True),  # itself
    (user("dan"), "dan", True),  # itself, present nowhere
    (SERVICE, "cid", True),
    (SERVICE, "nobody", True),  # a service reads anyone (unknown users are still not found: no view)
    (user("bob"), "ann", True),  # both present in lobby
    (user("ann"), "bob", True),
    (user("bob"), "cid", False),  # no channel in common
    (user("dan"), "ann", False),  # present nowhere
    (user("cid", read_users=("bob",)), "bob", True),  # named by read_users
    (user("cid", read_users=("friend-*",)), "friend-42", True),  # a glob of read_users
    (user("cid", read_users=("friend-*",)), "foe-1", False),
    (user("cid", read_users=("Bob",)), "bob", False),  # globs match case-sensitively
    # The token's channels restrict what it may read of channels, not whom: bob shares lobby with ann.
    (user("bob", channels=("team:*",)), "ann", True),
]


@pytest.mark.parametrize(("reader", "user_id", "expected"), RULE)
def test_who_may_read_whom(reader: Principal, user_id: str, expected: bool) -> None:
    assert may_read(reader, user_id, channels_of) is expected


def test_a_shared_channel_counts_only_while_both_are_present() -> None:
    present = {"ann": {"lobby"}, "bob": {"lobby"}}
    assert may_read(user("bob"), "ann", lambda u: present.get(u, frozenset()))
    present["bob"] = set()
    assert not may_read(user("bob"), "ann", lambda u: present.get(u, frozenset()))


def test_the_view_lists_only_the_channels_the_readers_token_allows() -> None:
    assert visible_channels(user("bob"), {"team:red", "lobby"}) == ["lobby", "team:red"]
    assert visible_channels(user("bob", channels=("team:*",)), {"team:red", "lobby"}) == ["team:red"]
    assert visible_channels(user("bob", channels=()), {"team:red", "lobby"}) == []
    assert visible_channels(SERVICE, {"team:red", "lobby"}) == ["lobby", "team:red"]


class Users:
    def __init__(self) -> None:
        self.views = {u: UserView(user_id=u, status="online", online=True, last_seen=1, connections=1)
                      for u in ("ann", "bob", "cid")}

    def user(self, user_id: str) -> UserView | None:
        return self.views.get(user_id)

    def channels_of(self, user_id: str) -> Set[str]:
        return channels_of(user_id)


def test_unreadable_and_unknown_users_are_answered_alike() -> None:
    users = Users()
    assert readable_view(user("bob"), "cid", users) is None  # exists, unreadable
    assert readable_view(user("bob"), "nobody", users) is None  # does not exist
    assert readable_view(SERVICE, "nobody", users) is None
    shown = readable_view(user("bob", channels=("lobby",)), "ann", users)
    assert shown is not None and shown["user_id"] == "ann" and shown["channels"] == ["lobby"]

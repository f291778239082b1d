"""Watches (services/watchers.py): a watcher gets a watched user's view when it changes, as it may read it
at that moment, and one `presence.user.gone` when it may no longer read it, whichever side moved."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import orjson

from schemas.changes import UserView
from services.auth import Principal
from services.watchers import Watchers


class Users:
    def __init__(self) -> None:
        self.views: dict[str, UserView] = {}
        self.present_in: dict[str, set[str]] = {}

    def user(self, user_id: str) -> UserView | None:
        return self.views.get(user_id)

    def channels_of(self, user_id: str) -> Set[str]:
        return self.present_in.get(user_id, set())

    def set(self, user_id: str, status: str) -> None:
        self.views[user_id] = UserView(user_id=user_id, status=status, online=True, last_seen=1, connections=1)


class Watcher:
    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.frames: list[dict[str, Any]] = []

    def push(self, frame: bytes) -> None:
        self.frames.append(orjson.loads(frame))


def setup() -> tuple[Users, Watchers, Watcher]:
    users = Users()
    for user_id in ("ann", "bob", "cid"):
        users.set(user_id, "online")
    users.present_in = {"ann": {"lobby"}, "bob": {"lobby"}}
    return users, Watchers(users), Watcher(Principal(user_id="ann", channels=None, read_users=("friend-*",)))


def test_watch_answers_the_readable_views_and_the_rest_as_not_found() -> None:
    _, watchers, ann = setup()
    views, not_found = watchers.watch(ann, ["bob", "cid", "nobody"])
    assert [v["user_id"] for v in views] == ["bob"] and views[0]["channels"] == ["lobby"]
    assert not_found == ["cid", "nobody"]  # cid exists but shares no channel: answered as unknown


def test_a_change_of_a_watched_user_is_pushed_once_and_only_to_its_watchers() -> None:
    users, watchers, ann = setup()
    other = Watcher(Principal(user_id="bob", channels=None))
    watchers.watch(ann, ["bob"])
    watchers.watch(other, ["ann"])
    users.set("bob", "busy")
    watchers.changed("bob", None)
    watchers.changed("bob", None)  # the same view again (a channel of the user the reader cannot see, a redelivery)
    assert ann.frames == [{"type": "presence.user", "user": {**ann.frames[0]["user"], "status": "busy"}}]
    assert ann.frames[0]["user"]["user_id"] == "bob" and other.frames == []


def test_a_user_that_becomes_unreadable_is_reported_gone_once_and_pushed_again_when_readable() -> None:
    users, watchers, ann = setup()
    watchers.watch(ann, ["bob"])
    users.present_in["bob"] = set()  # bob left the channel they shared
    watchers.changed("bob", "lobby")
    users.set("bob", "away")
    watchers.changed("bob", None)  # not readable: nothing
    assert ann.frames == [{"type": "presence.user.gone", "user_id": "bob"}]
    users.present_in["bob"] = {"lobby"}
    watchers.changed("bob", "lobby")
    assert ann.frames[1]["type"] == "presence.user" and ann.frames[1]["user"]["status"] == "away"


def test_an_erased_or_forgotten_user_is_reported_gone() -> None:
    users, watchers, ann = setup()
    users.set("friend-1", "online")
    watchers.watch(ann, ["friend-1"])  # readable by read_users, present nowhere
    del users.views["friend-1"]
    watchers.changed("friend-1", None)
    assert ann.frames == [{"type": "presence.user.gone", "user_id": "friend-1"}]


def test_a_user_not_found_at_watch_time_is_pushed_once_it_becomes_readable() -> None:
    users, watchers, ann = setup()
    _, not_found = watchers.watch(ann, ["cid"])
    assert not_found == ["cid"]
    watchers.changed("cid", None)
    assert ann.frames == []  # still unreadable, and it was never shown: no `gone` either
    users.present_in["cid"] = {"lobby"}
    watchers.changed("cid", "lobby")
    assert [f["user"]["user_id"] for f in ann.frames] == ["cid"]


def test_unwatch_stops_the_pushes() -> None:
    users, watchers, ann = setup()
    watchers.watch(ann, ["bob"])
    watchers.unwatch(ann, ["bob", "never-watched"])
    users.set("bob", "busy")
    watchers.changed("bob", None)
    assert ann.frames == []


def test_readability_is_judged_for_each_watcher_at_each_change() -> None:
    users, watchers, ann = setup()
    service = Watcher(Principal(user_id="", channels=None, service="backend"))
    watchers.watch(ann, ["bob"])
    watchers.watch(service, ["bob"])
    users.present_in["bob"] = set()
    users.set("bob", "busy")
    watchers.changed("bob", None)
    assert ann.frames == [{"type": "presence.user.gone", "user_id": "bob"}]
    assert [f["user"]["status"] for f in service.frames] == ["busy"]


def test_the_watchers_own_moves_are_judged_too() -> None:
    users, watchers, ann = setup()
    users.present_in["cid"] = {"side"}
    watchers.watch(ann, ["bob", "cid", "friend-2"])
    users.present_in["ann"] = set()  # ann left lobby: bob, present in it, is no longer readable
    watchers.changed("ann", "lobby")
    assert ann.frames == [{"type": "presence.user.gone", "user_id": "bob"}]
    users.present_in["ann"] = {"side"}  # ann joins side, where cid is
    watchers.changed("ann", "side")
    assert [f["user"]["channels"] for f in ann.frames[1:]] == [["side"]]
    assert ann.frames[1]["user"]["user_id"] == "cid"


def test_an_ended_watcher_is_forgotten() -> None:
    users, watchers, ann = setup()
    watchers.watch(ann, ["bob", "cid"])
    assert watchers.watching(ann) == {"bob", "cid"}
    watchers.forget(ann)
    assert watchers.watching(ann) == set()
    users.set("bob", "busy")
    watchers.changed("bob", None)
    watchers.changed("ann", "lobby")
    assert ann.frames == []

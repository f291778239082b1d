"""Watches: connections that follow a set of users (a friends list) get each one's view when it changes.

Whether a watcher may read a user (services.visibility) is judged again whenever either side moves:
- the watched user's view or channels change: its watchers are judged (indexed by watched user, so
  this costs the watchers of that user only);
- the watcher's own user joins or leaves a channel: the users it watches that are present in that
  channel are judged (this walks the watched users of that user's connections, at most 500 each).
So a user that stops sharing a channel with the watcher stops being pushed, whichever of the two
left. What a watcher was last shown of each user is kept as a hash, so it gets a frame only when
its view of the user changed:

- `presence.user` with the view, when the user is readable and its view (as this reader sees it)
  differs from the last one pushed;
- `presence.user.gone` with the user id, once, when a user the watcher was shown becomes
  unreadable or has no view any more (erased, or forgotten after its retention). The watch stays:
  if the user becomes readable again, `presence.user` frames follow.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Any, Protocol

import orjson

from services.auth import Principal
from services.visibility import Users, readable_view


class Watcher(Protocol):
    principal: Principal

    def push(self, frame: bytes) -> None: ...


class Watchers:
    def __init__(self, users: Users) -> None:
        self._users = users
        # watched user id -> watcher -> hash of the frame it was last pushed of the user (None: not shown)
        self._watching: dict[str, dict[Watcher, int | None]] = {}
        self._watched_by: dict[Watcher, set[str]] = {}
        self._watchers_of_reader: dict[str, set[Watcher]] = {}  # the watcher's own user id -> its watchers

    def watch(self, watcher: Watcher, user_ids: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Starts watching; returns the views the watcher may read now and the ids it may not (or unknown)."""
        views, not_found = [], []
        for user_id in user_ids:
            view = readable_view(watcher.principal, user_id, self._users)
            self._watching.setdefault(user_id, {})[watcher] = None if view is None else hash(_user_frame(view))
            self._watched_by.setdefault(watcher, set()).add(user_id)
            self._watchers_of_reader.setdefault(watcher.principal.user_id, set()).add(watcher)
            if view is None:
                not_found.append(user_id)
            else:
                views.append(view)
        return views, not_found

    def watching(self, watcher: Watcher) -> Set[str]:
        return self._watched_by.get(watcher, frozenset())

    def unwatch(self, watcher: Watcher, user_ids: Iterable[str]) -> None:
        watched = self._watched_by.get(watcher, set())
        for user_id in tuple(user_ids):
            watched.discard(user_id)
            watchers = self._watching.get(user_id)
            if watchers is not None:
                watchers.pop(watcher, None)
                if not watchers:
                    del self._watching[user_id]
        if not watched:
            self._watched_by.pop(watcher, None)
            of_reader = self._watchers_of_reader.get(watcher.principal.user_id, set())
            of_reader.discard(watcher)
            if not of_reader:
                self._watchers_of_reader.pop(watcher.principal.user_id, None)

    def forget(self, watcher: Watcher) -> None:
        """The watcher is gone (its socket ended): every watch of it ends."""
        self.unwatch(watcher, self.watching(watcher))

    def changed(self, user_id: str, moved_in: str | None) -> None:
        """The read model's listener: the user's view changed, or it joined or left channel `moved_in`."""
        for watcher in tuple(self._watching.get(user_id, ())):
            self._judge(watcher, user_id)
        if moved_in is None:
            return
        for watcher in tuple(self._watchers_of_reader.get(user_id, ())):
            for watched_id in tuple(self._watched_by.get(watcher, ())):
                if moved_in in self._users.channels_of(watched_id):
                    self._judge(watcher, watched_id)

    def _judge(self, watcher: Watcher, user_id: str) -> None:
        watchers = self._watching[user_id]
        shown = watchers[watcher]
        view = readable_view(watcher.principal, user_id, self._users)
        if view is not None:
            frame = _user_frame(view)
            if hash(frame) != shown:
                watchers[watcher] = hash(frame)
                watcher.push(frame)
        elif shown is not None:
            watchers[watcher] = None
            watcher.push(orjson.dumps({"type": "presence.user.gone", "user_id": user_id}))


def _user_frame(view: dict[str, Any]) -> bytes:
    return orjson.dumps({"type": "presence.user", "user": view})

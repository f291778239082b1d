"""Watches: connections that follow a set of users (a friends list) get each one's view when it changes.

Indexed by the watched user, so a change costs the watchers of that user only. Whether a watcher
may read the user (services.visibility) is judged at every change, not once at `watch`: a user
that stops sharing a channel with the watcher stops being pushed. What a watcher was last shown
of each user is kept as a hash, so it gets a frame only when its view of the user changed:

- `presence.user` with the view, when the user is readable and its view (as this reader sees it)
  differs from the last one pushed;
- `presence.user.gone` with the user id, once, when a user the watcher was shown becomes
  unreadable or has no view any more (erased, or forgotten after its retention). The watch stays:
  if the user becomes readable again, `presence.user` frames follow.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def watch(self, watcher: Watcher, user_ids: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
        """Starts watching; returns the views the watcher may read now and the ids it may not (or unknown)."""
        views, not_found = [], []
        for user_id in user_ids:
            view = readable_view(watcher.principal, user_id, self._users)
            shown = None if view is None else hash(_user_frame(view))
            self._watching.setdefault(user_id, {})[watcher] = shown
            if view is None:
                not_found.append(user_id)
            else:
                views.append(view)
        return views, not_found

    def unwatch(self, watcher: Watcher, user_ids: Iterable[str]) -> None:
        for user_id in user_ids:
            watchers = self._watching.get(user_id)
            if watchers is not None:
                watchers.pop(watcher, None)
                if not watchers:
                    del self._watching[user_id]

    def changed(self, user_id: str) -> None:
        """The read model's listener: the user's view or channels changed."""
        watchers = self._watching.get(user_id)
        if not watchers:
            return
        for watcher, shown in tuple(watchers.items()):
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

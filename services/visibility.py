"""Who may read whom: the one rule behind every read of a user's presence (REST user view, bulk
query, WebSocket watch).

A reader may read a user when it is that user, a service, allowed by its token's `read_users`
globs, or present in a channel the user is present in now. Everyone else is answered as if the
user did not exist (`user.not_found`), so a stranger cannot learn which user ids exist.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Set
from typing import Any, Protocol

from schemas.changes import UserView
from services import representation
from services.auth import Principal

ChannelsOf = Callable[[str], Set[str]]  # user id -> the channels it is present in now


def may_read(reader: Principal, user_id: str, channels_of: ChannelsOf) -> bool:
    if reader.is_service or reader.user_id == user_id:
        return True
    if any(fnmatch.fnmatchcase(user_id, pattern) for pattern in reader.read_users):
        return True
    return not channels_of(reader.user_id).isdisjoint(channels_of(user_id))


def visible_channels(reader: Principal, channels: Iterable[str]) -> list[str]:
    """The channels of a user's view that the reader's token allows, sorted."""
    return sorted(c for c in channels if reader.may_access(c))


class Users(Protocol):
    """What the rule reads: the edge's read model."""

    def user(self, user_id: str) -> UserView | None: ...

    def channels_of(self, user_id: str) -> Set[str]: ...


def readable_view(reader: Principal, user_id: str, users: Users) -> dict[str, Any] | None:
    """The user's view as this reader may see it, or None: unknown and unreadable users alike."""
    view = users.user(user_id)
    if view is None or not may_read(reader, user_id, users.channels_of):
        return None
    return representation.user(view, visible_channels(reader, users.channels_of(user_id)))

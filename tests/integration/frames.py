"""Matchers for the frames a test client receives, and unique names so tests never share a user."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

Match = Callable[[dict[str, Any]], bool]


def user(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def diff_with(channel: str, key: str, user_id: str, **fields: object) -> Match:
    """A `presence.diff` of `channel` whose `key` list (joins, leaves, updates) has the user with `fields`."""

    def match(frame: dict[str, Any]) -> bool:
        if frame["type"] != "presence.diff" or frame["channel"] != channel:
            return False
        return any(m["user_id"] == user_id and fields.items() <= m.items() for m in frame[key])

    return match


def typing_is(channel: str, users: list[str]) -> Match:
    return lambda f: f["type"] == "presence.diff" and f["channel"] == channel and f["typing"] == sorted(users)

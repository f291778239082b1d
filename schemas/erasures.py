"""Erasures: the users who asked to be erased, one record per user on `presence.erasures` (compacted).

Written by the processor's user stage when it applies a `user.erased` event. Every answer drawn from
history (a channel at a past instant, a timeline, analytics, a downstream projection) omits what the
log holds of the user up to `erased_at`; the event log itself keeps those records until its retention
deletes them (docs/history.md#erasure).
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class UserErasure:
    """One record on `presence.erasures`, keyed by user id: the user's latest erasure. Whatever the log
    holds of the user at or before `erased_at` is to be treated as erased by every reader."""

    user_id: str
    erased_at: int  # the `at` of the `user.erased` event, UTC epoch milliseconds
    event_id: str  # the `user.erased` event's id
    v: int = SCHEMA_VERSION

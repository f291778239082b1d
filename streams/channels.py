"""The pure channel core: fold member changes into a channel's membership and publish views.

Same rules as `streams.core`: no clock, no I/O, idempotent by log position: a change at or
before the last one applied of its user (`Change.source`, in `presence.events`) is a copy the
user stage wrote again, and through `apply_member_change_at` a record of `presence.channel-changes`
at or before the last one applied is a redo of this stage; a change that does not fit (a leave of
someone absent) changes nothing. Every effective change bumps `seq` by one,
so subscribers can apply "snapshot, then diffs" and notice a gap.

A channel that stayed empty is forgotten (`channel.expired`); if it is joined again, a new life
starts. Its `seq` must still exceed every `seq` of the lives before, or subscribers and resumes
would take new views for old ones, so a life starts at `SEQ_PER_MS` times the time of its first
change: above the last life's views as long as that life had fewer than `SEQ_PER_MS` views per
millisecond of its length plus the time it stayed empty.
"""

from __future__ import annotations

from dataclasses import replace

from schemas.changes import (
    ChannelChange,
    ChannelExpired,
    ChannelView,
    Departure,
    Member,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
)
from schemas.state import AppliedSource, ChannelState

SEQ_PER_MS = 1000
# How long a channel remembers the last change of a user who left it. The user stage writes a change
# again when it redoes events after a failover: its commit lag plus the failover, seconds to minutes.
DEPARTED_SOURCE_HOLD_MS = 10 * 60 * 1000


def apply_member_change(
    state: ChannelState | None, change: ChannelChange
) -> tuple[ChannelState | None, ChannelView | None]:
    """The channel after `change` (None: it has no state, or is forgotten) and the view to publish."""
    if isinstance(change, ChannelExpired):
        if state is not None and not state.members and state.changed_at == change.empty_since:
            return None, None
        return state, None
    before = state
    state = state or ChannelState(channel=change.channel, seq=change.at * SEQ_PER_MS)
    applied = state.applied_sources.get(change.user_id)
    if change.source is not None and applied is not None and change.source <= applied.source:
        return before, None
    members = {m.user_id: m for m in state.members}
    typing = set(state.typing)
    joins: tuple[Member, ...] = ()
    updates: tuple[Member, ...] = ()
    leaves: tuple[Departure, ...] = ()
    if isinstance(change, MemberJoined | MemberUpdated):
        current = members.get(change.user_id)
        if current == change.member or (current is None and isinstance(change, MemberUpdated)):
            return before, None
        members[change.user_id] = change.member
        if current is None:
            joins = (change.member,)
        else:
            updates = (change.member,)
    elif isinstance(change, MemberLeft):
        if members.pop(change.user_id, None) is None:
            return before, None
        typing.discard(change.user_id)
        leaves = (Departure(user_id=change.user_id, reason=change.reason, last_seen=change.last_seen),)
    elif isinstance(change, MemberTyping):
        if change.user_id not in members or (change.user_id in typing) == change.typing:
            return before, None
        if change.typing:
            typing.add(change.user_id)
        else:
            typing.discard(change.user_id)
    else:
        return before, None
    state = replace(
        state,
        seq=state.seq + 1,
        members=tuple(sorted(members.values(), key=lambda m: m.user_id)),
        typing=tuple(sorted(typing)),
        applied_sources=_applied_sources(state.applied_sources, change, members),
        changed_at=change.at,
    )
    view = ChannelView(
        channel=state.channel, seq=state.seq, at=change.at, members=state.members,
        joins=joins, leaves=leaves, updates=updates, typing=state.typing,
    )
    return state, view


def _applied_sources(applied: dict[str, AppliedSource], change: ChannelChange, members: dict[str, Member]
                     ) -> dict[str, AppliedSource]:
    kept = {user_id: a for user_id, a in applied.items()
            if user_id in members or change.at - a.at < DEPARTED_SOURCE_HOLD_MS}
    if change.source is not None:
        kept[change.user_id] = AppliedSource(source=change.source, at=change.at)
    return kept


def apply_member_change_at(
    state: ChannelState | None, change: ChannelChange, offset: int
) -> tuple[ChannelState | None, ChannelView | None]:
    """`apply_member_change` for the `presence.channel-changes` record at `offset`: a redo after a failover
    can be far longer than a commit interval, and a channel's changes are all in one partition."""
    if state is not None and offset <= state.applied_offset:
        return state, None
    after, view = apply_member_change(state, change)
    if after is None or view is None:
        return after, view
    return replace(after, applied_offset=offset), view

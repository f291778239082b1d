"""Analytics from the change log: users online and channel members over time, peaks, time in each
status, typing. `analyze(changes, window)` folds `presence.changes` records and measures what
happened inside the window [from_ms, to_ms).

Rules this module obeys:
1. Presence is what everyone else saw. A user is online from `user.online` to `user.offline`; an
   invisible user is offline (the core announces going invisible as `user.offline`). A user is a
   member of a channel from `member.joined` to `member.left`, or to the user's `user.offline`.
2. A user's status is the one shown while online: `status` of `user.online`, then of each
   `user.status_changed`. Time offline is counted in no status.
3. A user types in a channel from `member.typing` true to `member.typing` false, to its
   `member.left` of that channel, or to its `user.offline` (leaving clears an indicator without a
   `member.typing`). A typing start is a `member.typing` true stamped inside the window.
4. A user's changes are folded in the order given, which must be the log's order for that user
   (`presence.changes` is keyed by user id); different users' changes may interleave in any order.
   A change stamped earlier than the user's previous one (two edges' clocks) counts at the time of
   the previous one, so no span runs backwards.
5. The fold starts where the changes start and counts only inside the window: a user online since
   before `from_ms` counts from `from_ms`, spans still open at `to_ms` end there, and changes stamped
   at or after `to_ms` are skipped. A change that implies a state whose start the log no longer
   holds (a `user.status_changed` without its `user.online`, a `member.updated` or `member.typing`
   without its `member.joined`) starts that state at its own time.
6. Concurrency is measured per bucket, [from_ms + k * bucket_ms, + bucket_ms), the last one cut at
   `to_ms`. A count at an instant is the count after every change stamped at that instant, so a leave
   and a join in the same millisecond are no spike. `max` is the highest count during the bucket,
   `mean` the time-weighted mean. A peak is the highest count in the window and the first instant it
   held.
7. Erased users (`presence.erasures`) are left out: `without_erased` drops each change of a user
   stamped at or before that user's erasure, before the fold.

No clock, no I/O, no randomness: the same changes and window give the same figures.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.changes import (
    Change,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    UserCameOnline,
    UserStatusChanged,
    UserWentOffline,
)


@dataclass(frozen=True, slots=True)
class Window:
    from_ms: int
    to_ms: int
    bucket_ms: int

    def __post_init__(self) -> None:
        if self.to_ms <= self.from_ms:
            raise ValueError(f"the window ends ({self.to_ms}) at or before it starts ({self.from_ms})")
        if self.bucket_ms <= 0:
            raise ValueError(f"a bucket must be at least 1 ms long, not {self.bucket_ms}")

    def buckets(self) -> list[tuple[int, int]]:
        return [(start, min(start + self.bucket_ms, self.to_ms))
                for start in range(self.from_ms, self.to_ms, self.bucket_ms)]


@dataclass(frozen=True, slots=True)
class Bucket:
    start: int
    end: int
    max: int
    mean: float


@dataclass(frozen=True, slots=True)
class Peak:
    value: int
    at: int  # the first instant the count was `value`


@dataclass(frozen=True, slots=True)
class Series:
    """A count over the window: users online, or a channel's members."""

    buckets: tuple[Bucket, ...]
    peak: Peak


@dataclass(frozen=True, slots=True)
class Typing:
    starts: int = 0
    ms: int = 0

    def __add__(self, other: Typing) -> Typing:
        return Typing(self.starts + other.starts, self.ms + other.ms)


@dataclass(frozen=True, slots=True)
class Analytics:
    window: Window
    online: Series  # users online
    channels: dict[str, Series]  # members, for each channel with a member during the window; by name
    status_ms: dict[str, dict[str, int]]  # user -> status -> ms shown in it; by user, then status
    typing: dict[tuple[str, str], Typing]  # (channel, user) -> typing; by channel, then user

    def typing_by_channel(self) -> dict[str, Typing]:
        return _summed((channel, t) for (channel, _), t in self.typing.items())

    def typing_by_user(self) -> dict[str, Typing]:
        return _summed((user_id, t) for (_, user_id), t in self.typing.items())


def analyze(changes: Iterable[Change], window: Window) -> Analytics:
    fold = _Fold(window)
    for change in changes:
        fold.step(change)
    return fold.result()


def without_erased(changes: Iterable[Change], erased: Mapping[str, int]) -> list[Change]:
    """The changes less those of erased users at or before their erasure (`erased`: user id -> erased_at)."""
    return [c for c in changes if c.at > erased.get(c.user_id, c.at - 1)]


@dataclass(slots=True)
class _User:
    clock: int  # the time of the latest change folded (rule 4)
    status: str | None = None  # None: offline
    status_since: int = 0
    channels: dict[str, int] = field(default_factory=dict)  # channel -> member since
    typing: dict[str, int] = field(default_factory=dict)  # channel -> typing since


class _Fold:
    """Every user's state, and what the spans that ended count inside the window."""

    def __init__(self, window: Window) -> None:
        self.window = window
        self.users: dict[str, _User] = {}
        # Changes of a count, by instant: +1 where a span starts, -1 where it ends (clipped to the window).
        self.online: defaultdict[int, int] = defaultdict(int)
        self.members: defaultdict[str, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.status_ms: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.typing_starts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.typing_ms: defaultdict[tuple[str, str], int] = defaultdict(int)

    def step(self, change: Change) -> None:
        transition = _TRANSITIONS.get(type(change))
        if transition is None or change.at >= self.window.to_ms:
            return
        user = self.users.get(change.user_id)
        if user is None:
            user = self.users[change.user_id] = _User(clock=change.at)
        user.clock = max(user.clock, change.at)
        transition(self, change.user_id, user, change)

    def result(self) -> Analytics:
        for user_id, user in self.users.items():
            user.clock = self.window.to_ms
            self.offline(user_id, user)
        pairs = sorted(self.typing_starts.keys() | self.typing_ms.keys())
        return Analytics(
            window=self.window,
            online=_series(self.online, self.window),
            channels={channel: _series(self.members[channel], self.window) for channel in sorted(self.members)},
            status_ms={user_id: dict(sorted(self.status_ms[user_id].items())) for user_id in sorted(self.status_ms)},
            typing={pair: Typing(self.typing_starts[pair], self.typing_ms[pair]) for pair in pairs},
        )

    def status(self, user_id: str, user: _User, status: str | None) -> None:
        if user.status is not None and (span := self._clipped(user.status_since, user.clock)):
            self.online[span[0]] += 1
            self.online[span[1]] -= 1
            self.status_ms[user_id][user.status] += span[1] - span[0]
        user.status, user.status_since = status, user.clock

    def joined(self, user: _User, channel: str) -> None:
        user.channels.setdefault(channel, user.clock)

    def left(self, user_id: str, user: _User, channel: str) -> None:
        self.stopped_typing(user_id, user, channel)
        since = user.channels.pop(channel, None)
        if since is not None and (span := self._clipped(since, user.clock)):
            self.members[channel][span[0]] += 1
            self.members[channel][span[1]] -= 1

    def typed(self, user_id: str, user: _User, channel: str, typing: bool) -> None:
        if not typing:
            self.stopped_typing(user_id, user, channel)
        elif channel not in user.typing:
            self.joined(user, channel)
            user.typing[channel] = user.clock
            if self.window.from_ms <= user.clock:
                self.typing_starts[channel, user_id] += 1

    def stopped_typing(self, user_id: str, user: _User, channel: str) -> None:
        since = user.typing.pop(channel, None)
        if since is not None and (span := self._clipped(since, user.clock)):
            self.typing_ms[channel, user_id] += span[1] - span[0]

    def offline(self, user_id: str, user: _User) -> None:
        for channel in sorted(user.channels):
            self.left(user_id, user, channel)
        self.status(user_id, user, None)

    def _clipped(self, start: int, end: int) -> tuple[int, int] | None:
        start, end = max(start, self.window.from_ms), min(end, self.window.to_ms)
        return (start, end) if start < end else None


# Each change type to what it does to the fold (the table is the dispatch); others count for nothing.
_TRANSITIONS: dict[type[Change], Callable[[_Fold, str, _User, Any], None]] = {
    UserCameOnline: lambda fold, user_id, user, c: fold.status(user_id, user, c.status),
    UserStatusChanged: lambda fold, user_id, user, c: fold.status(user_id, user, c.status),
    UserWentOffline: lambda fold, user_id, user, c: fold.offline(user_id, user),
    MemberJoined: lambda fold, user_id, user, c: fold.joined(user, c.channel),
    MemberUpdated: lambda fold, user_id, user, c: fold.joined(user, c.channel),
    MemberLeft: lambda fold, user_id, user, c: fold.left(user_id, user, c.channel),
    MemberTyping: lambda fold, user_id, user, c: fold.typed(user_id, user, c.channel, c.typing),
}


def _series(deltas: dict[int, int], window: Window) -> Series:
    """The count over the window from its changes by instant (all inside the window)."""
    instants = sorted(t for t, d in deltas.items() if d)
    level = best = i = 0
    best_at = window.from_ms
    buckets = []
    for start, end in window.buckets():
        cursor, area, most = start, 0, 0
        while True:
            until = instants[i] if i < len(instants) and instants[i] < end else end
            if until > cursor:  # the count holds `level` over [cursor, until)
                area += level * (until - cursor)
                most = max(most, level)
                if level > best:
                    best, best_at = level, cursor
                cursor = until
            if until == end:
                break
            level += deltas[until]
            i += 1
        buckets.append(Bucket(start, end, most, area / (end - start)))
    return Series(tuple(buckets), Peak(best, best_at))


def _summed(items: Iterable[tuple[str, Typing]]) -> dict[str, Typing]:
    sums: dict[str, Typing] = {}
    for key, typing in items:
        sums[key] = sums.get(key, Typing()) + typing
    return dict(sorted(sums.items()))

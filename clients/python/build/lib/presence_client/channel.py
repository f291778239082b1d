"""One channel's view, kept by folding the channel's frames in `seq` order (docs/api.md, "Keeping a
channel view"). Pure: no I/O, no clock; the client feeds it frames and acts on what it answers.

Rules, by frame:
1. `presence.snapshot` replaces the view, whatever its `seq` (a forgotten channel restarts at 0), and
   ends a pending resync.
2. `presence.diff` / `presence.batch` (a diff without `from_seq` covers just `seq`):
   - no view held, or a resync pending: ignored (the snapshot that comes next supersedes it);
   - `seq` <= the held `seq`: old or repeated, ignored;
   - `from_seq` == held + 1: applied (joins added, updates replaced, leaves removed, typing replaced);
   - otherwise a view was missed: nothing is applied and a resync is asked for, once, until the
     snapshot arrives. The client resyncs by sending `join`/`subscribe` again without `since`.
3. `presence.resumed` whose `since` is the held `seq` keeps the view (the missed diffs follow);
   with any other `since`, or no view held, it is a gap as in rule 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from presence_client.records import (
    ChannelChange,
    Departure,
    Member,
    MemberJoined,
    MemberLeft,
    MemberUpdated,
    Resumed,
    Resynced,
    TypingChanged,
)


@dataclass(frozen=True, slots=True)
class Applied:
    changes: tuple[ChannelChange, ...] = ()
    resync: bool = False  # a gap was found now: send join/subscribe again, without `since`


class ChannelView:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.seq: int | None = None  # None until the first snapshot
        self.members: dict[str, Member] = {}
        self.typing: frozenset[str] = frozenset()
        self.occupancy = 0
        self.resync_pending = False

    def apply(self, frame: Mapping[str, Any]) -> Applied:
        kind = frame["type"]
        if kind == "presence.snapshot":
            return self._snapshot(frame)
        if kind == "presence.resumed":
            if frame["since"] != self.seq or self.resync_pending:
                return self._gap()
            return Applied((Resumed(self.channel, frame["since"], frame["seq"]),))
        if kind in ("presence.diff", "presence.batch"):
            return self._step(frame)
        raise ValueError(f"not a channel frame: {kind!r}")

    def _snapshot(self, frame: Mapping[str, Any]) -> Applied:
        held = self.seq is not None
        self.seq, self.occupancy, self.resync_pending = frame["seq"], frame["occupancy"], False
        self.members = {m["user_id"]: Member.from_json(m) for m in frame["members"]}
        self.typing = frozenset(frame["typing"])
        if not held:
            return Applied()
        return Applied((Resynced(self.channel, frame["seq"], dict(self.members)),))

    def _step(self, frame: Mapping[str, Any]) -> Applied:
        seq: int = frame["seq"]
        if self.seq is None or self.resync_pending or seq <= self.seq:
            return Applied()
        if frame.get("from_seq", seq) != self.seq + 1:
            return self._gap()
        changes: list[ChannelChange] = []
        for body in frame["joins"]:
            member = Member.from_json(body)
            self.members[member.user_id] = member
            changes.append(MemberJoined(self.channel, seq, member))
        for body in frame["updates"]:
            member = Member.from_json(body)
            changes.append(MemberUpdated(self.channel, seq, member, self.members.get(member.user_id)))
            self.members[member.user_id] = member
        for body in frame["leaves"]:
            departure = Departure.from_json(body)
            self.members.pop(departure.user_id, None)
            changes.append(MemberLeft(self.channel, seq, departure))
        typing = frozenset(frame["typing"])
        if typing != self.typing:
            changes.append(TypingChanged(self.channel, seq, typing, typing - self.typing, self.typing - typing))
        self.seq, self.typing, self.occupancy = seq, typing, frame["occupancy"]
        return Applied(tuple(changes))

    def _gap(self) -> Applied:
        if self.resync_pending:
            return Applied()
        self.resync_pending = True
        return Applied(resync=True)

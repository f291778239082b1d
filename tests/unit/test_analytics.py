"""Analytics figures on a small hand-written log (every expected number worked out by hand below), an
oracle that counts millisecond by millisecond over random logs from the real core, and the command's
output shown in docs/analytics.md."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.changes import (
    Change,
    Member,
    MemberJoined,
    MemberLeft,
    MemberTyping,
    MemberUpdated,
    UserCameOnline,
    UserStatusChanged,
    UserWentOffline,
)
from schemas.codec import encode
from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionOpened,
    Event,
    PresenceUpdated,
    TypingStarted,
    TypingStopped,
)
from schemas.state import UserPresence
from streams.analytics import Bucket, Peak, Typing, Window, analyze
from streams.core import apply

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "docs" / "analytics" / "sample-changes.jsonl"
DOC = ROOT / "docs" / "analytics.md"

NINE = 1767258000000  # 2026-01-01T09:00:00Z: the window is 09:00 to 10:00, four buckets of 15 min
MIN = 60_000
WINDOW = Window(NINE, NINE + 60 * MIN, 15 * MIN)


class Log:
    """Changes of one user, at minutes from 09:00, as the core writes them."""

    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.changes: list[Change] = []

    def _add(self, cls: type[Change], minute: float, **fields: object) -> Log:
        change_id = f"{self.user_id}-{len(self.changes)}/0"
        self.changes.append(cls(change_id=change_id, user_id=self.user_id, at=NINE + round(minute * MIN), **fields))
        return self

    def online(self, minute: float, status: str) -> Log:
        return self._add(UserCameOnline, minute, status=status)

    def status(self, minute: float, status: str, previous: str) -> Log:
        return self._add(UserStatusChanged, minute, status=status, previous=previous)

    def offline(self, minute: float) -> Log:
        return self._add(UserWentOffline, minute, reason="leave", last_seen=NINE + round(minute * MIN))

    def join(self, minute: float, channel: str, status: str) -> Log:
        at = NINE + round(minute * MIN)
        member = Member(user_id=self.user_id, status=status, joined_at=at, last_seen=at, connections=1)
        return self._add(MemberJoined, minute, channel=channel, member=member)

    def leave(self, minute: float, channel: str) -> Log:
        return self._add(MemberLeft, minute, channel=channel, reason="leave", last_seen=NINE + round(minute * MIN))

    def typing(self, minute: float, channel: str, typing: bool) -> Log:
        return self._add(MemberTyping, minute, channel=channel, typing=typing)


# ada is online and in lobby since 08:50, typing there since 08:58; busy from 09:05 to 09:40; types
# again 09:20-09:21; leaves at 09:50.
ADA = (Log("ada").online(-10, "online").join(-10, "lobby", "online").typing(-2, "lobby", True)
       .typing(1, "lobby", False).status(5, "busy", "online").typing(20, "lobby", True)
       .typing(21, "lobby", False).status(40, "online", "busy").leave(50, "lobby").offline(50))
# bob comes at 09:10 into lobby, and ops at 09:12; types in ops from 09:15 until he leaves it at 09:16
# (leaving clears typing without a member.typing); types in lobby 09:30:00-09:30:30; auto-away at
# 09:35; still online at 10:00 (his offline at 10:10 is past the window).
BOB = (Log("bob").online(10, "online").join(10, "lobby", "online").join(12, "ops", "online")
       .typing(15, "ops", True).leave(16, "ops").typing(30, "lobby", True).typing(30.5, "lobby", False)
       .status(35, "away", "online").offline(70))
# cyd, dnd, in ops 09:20-09:25, invisible (offline to others) 09:25-09:45, then back in ops to the end.
CYD = (Log("cyd").online(20, "dnd").join(20, "ops", "dnd").leave(25, "ops").offline(25)
       .online(45, "dnd").join(45, "ops", "dnd"))
# As a reader of presence.changes gets them: partition by partition, each user's in order.
LOG = ADA.changes + BOB.changes + CYD.changes


def test_users_online_per_bucket_and_peak() -> None:
    # online: 09:00-09:10 ada (1); 09:10-09:20 +bob (2); 09:20-09:25 +cyd (3); 09:25-09:45 ada, bob (2);
    # 09:45-09:50 +cyd (3); 09:50-10:00 bob, cyd (2).
    online = analyze(LOG, WINDOW).online

    assert online.buckets == (
        Bucket(NINE, NINE + 15 * MIN, max=2, mean=(10 * 1 + 5 * 2) / 15),
        Bucket(NINE + 15 * MIN, NINE + 30 * MIN, max=3, mean=(5 * 2 + 5 * 3 + 5 * 2) / 15),
        Bucket(NINE + 30 * MIN, NINE + 45 * MIN, max=2, mean=2.0),
        Bucket(NINE + 45 * MIN, NINE + 60 * MIN, max=3, mean=(5 * 3 + 10 * 2) / 15),
    )
    assert online.peak == Peak(3, NINE + 20 * MIN)


def test_members_per_channel_and_peaks() -> None:
    # lobby: ada 09:00-09:50, bob 09:10-10:00. ops: bob 09:12-09:16, cyd 09:20-09:25 and 09:45-10:00.
    channels = analyze(LOG, WINDOW).channels

    assert list(channels) == ["lobby", "ops"]
    assert [(b.max, b.mean) for b in channels["lobby"].buckets] == [
        (2, (10 * 1 + 5 * 2) / 15), (2, 2.0), (2, 2.0), (2, (5 * 2 + 10 * 1) / 15)]
    assert channels["lobby"].peak == Peak(2, NINE + 10 * MIN)
    assert [(b.max, b.mean) for b in channels["ops"].buckets] == [
        (1, 3 / 15), (1, (1 + 5) / 15), (0, 0.0), (1, 1.0)]
    assert channels["ops"].peak == Peak(1, NINE + 12 * MIN)


def test_time_in_each_status_is_clipped_to_the_window_and_skips_offline() -> None:
    assert analyze(LOG, WINDOW).status_ms == {
        "ada": {"busy": 35 * MIN, "online": (5 + 10) * MIN},  # online 09:00-09:05 and 09:40-09:50
        "bob": {"away": 25 * MIN, "online": 25 * MIN},  # online 09:10-09:35, away to 10:00
        "cyd": {"dnd": (5 + 15) * MIN},  # invisible 09:25-09:45 counts in no status
    }


def test_typing_per_channel_and_user() -> None:
    analytics = analyze(LOG, WINDOW)

    assert analytics.typing == {
        # 09:00-09:01 (started before the window: no start counted) and 09:20-09:21
        ("lobby", "ada"): Typing(starts=1, ms=2 * MIN),
        ("lobby", "bob"): Typing(starts=1, ms=30_000),
        ("ops", "bob"): Typing(starts=1, ms=1 * MIN),  # ended by leaving ops
    }
    assert analytics.typing_by_channel() == {"lobby": Typing(2, 150_000), "ops": Typing(1, 60_000)}
    assert analytics.typing_by_user() == {"ada": Typing(1, 120_000), "bob": Typing(2, 90_000)}


def test_time_in_statuses_adds_up_to_the_time_online() -> None:
    analytics = analyze(LOG, WINDOW)

    user_ms = sum(sum(by_status.values()) for by_status in analytics.status_ms.values())
    assert user_ms == sum(b.mean * (b.end - b.start) for b in analytics.online.buckets) == 120 * MIN


def test_the_order_of_different_users_changes_does_not_matter() -> None:
    interleaved = sorted(LOG, key=lambda c: c.at)

    assert analyze(interleaved, WINDOW) == analyze(LOG, WINDOW)


def test_a_change_stamped_before_the_users_previous_one_counts_at_that_one() -> None:
    # Two edges' clocks: the offline is stamped a minute before the online it follows in the log.
    log = Log("eve").online(10, "online").offline(9).online(30, "away").changes

    assert analyze(log, WINDOW).status_ms == {"eve": {"away": 30 * MIN}}


def test_state_the_log_no_longer_holds_the_start_of_begins_at_its_first_change() -> None:
    member = Member(user_id="fay", status="busy", joined_at=0, last_seen=0, connections=1)
    log = [UserStatusChanged(change_id="f/0", user_id="fay", at=NINE + 10 * MIN, status="busy", previous="online"),
           MemberUpdated(change_id="f/1", user_id="fay", at=NINE + 10 * MIN, channel="lobby", member=member)]

    analytics = analyze(log, WINDOW)

    assert analytics.status_ms == {"fay": {"busy": 50 * MIN}}
    assert analytics.channels["lobby"].peak == Peak(1, NINE + 10 * MIN)


def test_a_window_cut_short_by_its_end_has_a_shorter_last_bucket() -> None:
    window = Window(NINE, NINE + 20 * MIN, 15 * MIN)

    assert analyze(LOG, window).online.buckets[-1] == Bucket(NINE + 15 * MIN, NINE + 20 * MIN, max=2, mean=2.0)


def test_an_empty_log_counts_nobody() -> None:
    analytics = analyze([], WINDOW)

    assert analytics.online.peak == Peak(0, NINE)
    assert [b.max for b in analytics.online.buckets] == [0, 0, 0, 0]
    assert analytics.channels == analytics.status_ms == analytics.typing == {}


@pytest.mark.parametrize(("from_ms", "to_ms", "bucket_ms"), [(10, 10, 1), (10, 5, 1), (0, 10, 0)])
def test_a_window_must_be_a_span_of_buckets(from_ms: int, to_ms: int, bucket_ms: int) -> None:
    with pytest.raises(ValueError):
        Window(from_ms, to_ms, bucket_ms)


# The oracle: random event logs through the real core, counted millisecond by millisecond.

USERS, CHANNELS = ("u1", "u2", "u3"), ("a", "b")
steps = st.lists(
    st.tuples(
        st.sampled_from(USERS),
        st.sampled_from(("open", "close", "join", "leave", "status", "invisible", "type", "untype")),
        st.sampled_from(CHANNELS),
        st.sampled_from(("online", "busy", "away")),
        st.integers(0, 3),  # ms since the previous step
    ),
    max_size=60,
)


def event(event_id: str, user_id: str, kind: str, channel: str, status: str, at: int) -> Event:
    """Each user has one connection, `c`."""
    common = {"event_id": event_id, "user_id": user_id, "connection_id": "c", "edge_id": "edge", "at": at}
    made: dict[str, Callable[[], Event]] = {
        "open": lambda: ConnectionOpened(**common, timeout_ms=10**6, status=status),
        "close": lambda: ConnectionClosed(**common),
        "join": lambda: ChannelJoined(**common, channel=channel),
        "leave": lambda: ChannelLeft(**common, channel=channel),
        "status": lambda: PresenceUpdated(**common, status=status),
        "invisible": lambda: PresenceUpdated(**common, status="invisible", visible=False),
        "type": lambda: TypingStarted(**common, channel=channel, expires_at=at + 10**6),
        "untype": lambda: TypingStopped(**common, channel=channel),
    }
    return made[kind]()


def core_changes(log: list[tuple[str, str, str, str, int]]) -> list[Change]:
    """The changes of the steps' events; a step that needs an open connection (or, to type, the channel
    joined) gets it first, at the same instant, so that most steps change something."""
    states: dict[str, UserPresence | None] = defaultdict(lambda: None)
    changes: list[Change] = []
    at = 0
    for n, (user_id, kind, channel, status, gap) in enumerate(log):
        at += gap
        state = states[user_id]
        joined = state.connections[0].channels if state is not None and state.connections else None
        needed = [] if kind in ("open", "close") or joined is not None else ["open"]
        if kind == "type" and channel not in (joined or ()):
            needed.append("join")
        for i, step in enumerate([*needed, kind]):
            states[user_id], new = apply(states[user_id], event(f"e{n}.{i}", user_id, step, channel, status, at))
            changes += new
    return changes


@dataclass
class Counted:
    """What was shown at each millisecond of the window (after every change stamped at it), added up."""

    online: dict[int, int] = field(default_factory=dict)  # ms -> users online
    members: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))  # channel -> ms -> n
    status_ms: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    typing_ms: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))


def counted_ms_by_ms(changes: list[Change], window: Window) -> Counted:
    counted = Counted()
    status: dict[str, str] = {}
    joined: set[tuple[str, str]] = set()
    typing: set[tuple[str, str]] = set()
    pending = sorted(changes, key=lambda c: c.at)  # the core stamps each user's changes in order
    for t in range(min([window.from_ms, *(c.at for c in changes)]), window.to_ms):
        while pending and pending[0].at <= t:
            c = pending.pop(0)
            if isinstance(c, UserCameOnline | UserStatusChanged):
                status[c.user_id] = c.status
            elif isinstance(c, UserWentOffline):
                status.pop(c.user_id, None)
                joined -= {(ch, u) for ch, u in joined if u == c.user_id}
                typing -= {(ch, u) for ch, u in typing if u == c.user_id}
            elif isinstance(c, MemberJoined):
                joined.add((c.channel, c.user_id))
            elif isinstance(c, MemberLeft):
                joined.discard((c.channel, c.user_id))
                typing.discard((c.channel, c.user_id))
            elif isinstance(c, MemberTyping):
                (typing.add if c.typing else typing.discard)((c.channel, c.user_id))
        if t < window.from_ms:
            continue
        counted.online[t] = len(status)
        for channel, _ in joined:
            counted.members[channel][t] = counted.members[channel].get(t, 0) + 1
        for user_id, shown in status.items():
            counted.status_ms[user_id][shown] += 1
        for pair in typing:
            counted.typing_ms[pair] += 1
    return counted


@settings(max_examples=200, deadline=None)
@given(steps, st.integers(0, 60), st.integers(1, 60), st.integers(1, 25))
def test_figures_equal_a_count_millisecond_by_millisecond(
    log: list[tuple[str, str, str, str, int]], from_ms: int, length: int, bucket_ms: int
) -> None:
    changes = core_changes(log)
    window = Window(from_ms, from_ms + length, bucket_ms)
    counted = counted_ms_by_ms(changes, window)

    analytics = analyze(changes, window)

    def per_bucket(by_ms: dict[int, int]) -> list[tuple[int, float]]:
        return [(max(by_ms.get(t, 0) for t in range(s, e)), sum(by_ms.get(t, 0) for t in range(s, e)) / (e - s))
                for s, e in window.buckets()]

    def peak(by_ms: dict[int, int]) -> Peak:
        best = max(by_ms.get(t, 0) for t in range(window.from_ms, window.to_ms))
        return Peak(best, next(t for t in range(window.from_ms, window.to_ms) if by_ms.get(t, 0) == best))

    assert [(b.max, pytest.approx(b.mean)) for b in analytics.online.buckets] == per_bucket(counted.online)
    assert analytics.online.peak == peak(counted.online)
    assert set(analytics.channels) == set(counted.members)
    for channel, series in analytics.channels.items():
        assert [(b.max, pytest.approx(b.mean)) for b in series.buckets] == per_bucket(counted.members[channel])
        assert series.peak == peak(counted.members[channel])
    assert analytics.status_ms == {user_id: dict(by) for user_id, by in counted.status_ms.items()}
    assert {pair: t.ms for pair, t in analytics.typing.items() if t.ms} == counted.typing_ms
    starts = [c for c in changes if isinstance(c, MemberTyping) and c.typing and window.from_ms <= c.at < window.to_ms]
    assert sum(t.starts for t in analytics.typing.values()) == len(starts)


def test_the_sample_file_is_this_log() -> None:
    assert SAMPLE.read_bytes() == b"".join(encode(change) + b"\n" for change in LOG)


# docs/analytics.md: every ```console block is one command (after `$ `) and its output.
CONSOLE = re.compile(r"^```console\n\$ (.*?)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_the_commands_in_the_doc_print_what_it_shows(tmp_path: Path) -> None:
    blocks = CONSOLE.findall(DOC.read_text())
    assert [command.split()[0] for command, _ in blocks] == ["presence", *["cat"] * 5, "python"]
    (tmp_path / "docs" / "analytics").mkdir(parents=True)
    (tmp_path / "docs" / "analytics" / SAMPLE.name).write_bytes(SAMPLE.read_bytes())
    for command, shown in blocks:
        words = shlex.split(command)
        if words[0] == "cat":
            printed = (tmp_path / words[1]).read_text()
        else:
            program = [sys.executable, "-m", "services.cli"] if words[0] == "presence" else [sys.executable]
            run = subprocess.run([*program, *words[1:]], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 capture_output=True, text=True, timeout=120, check=True)
            # pyarrow is optional: the doc shows the files written without it
            printed = "".join(line for line in run.stdout.splitlines(keepends=True) if ".parquet" not in line)
        assert printed == shown, command

"""The core and the sweeper, driven step by step like production, against the reference model.

A hypothesis state machine plays clients (connects from several devices, heartbeats, clean closes,
dropped transports, joins, leaves, status and metadata updates under a test policy with custom
states, typing), the clock and the sweeper (`due_events`, its events applied at once or landing
late, after other activity), producer retries (an event written twice) and processor restarts
(each user's state restored from the changelog, then every event since the last commit redone).

After every step: what the core shows of each user is what `tests/oracle.py` folds from the same
log, and no connection is lost or counted twice. After a sweep nobody is online past a deadline.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from schemas.events import (
    ChannelJoined,
    ChannelLeft,
    ConnectionClosed,
    ConnectionDropped,
    ConnectionOpened,
    Event,
    Heartbeat,
    TypingStarted,
    TypingStopped,
)
from schemas.state import UserPresence
from services.policy import BUILT_IN_STATES, ChannelRule, Policy, StateSpec
from services.protocol import Update
from services.updates import update_event
from streams.core import apply_at, due_events, user_view
from tests import oracle

USERS = ("ann", "bob")
CHANNELS = ("lobby", "game-1")
TIMEOUT_MS = 30_000
REST = "rest"  # the connection id of an update from no connection of the user's (a REST call)

POLICY = Policy(
    states={
        **{s.name: s for s in BUILT_IN_STATES},
        "in-a-meeting": StateSpec(
            "in-a-meeting", expires_after_s=20, timeout_s=60,
            metadata_schema={"type": "object", "properties": {"room": {"type": "string"}}},
        ),
        "focus": StateSpec("focus", timeout_s=8),  # a short per-state timeout
        "ghost": StateSpec("ghost", counts_as_online=False, expires_after_s=15),
    },
    channel_rules=(ChannelRule("game-*", timeout_s=10, typing_timeout_s=3),),
    idle_after_s=20,
)

users = st.sampled_from(USERS)
picks = st.integers(min_value=0, max_value=7)  # which connection: a live one first, else any ever opened
channels = st.sampled_from(CHANNELS)
in_channels = st.integers(min_value=0, max_value=3)  # which channel: the connection's own first
texts = st.sampled_from((None, None, "", "lunch"))
metadata = st.none() | st.fixed_dictionaries({"mood": st.sampled_from(("calm", "busy"))})


class Presence(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.now = 1_000_000
        self.ids = 0
        self.log: list[Event] = []  # presence.events
        self.states: dict[str, UserPresence] = {}  # the processor's users table
        self.tables: list[dict[str, UserPresence]] = [{}]  # the table after each prefix of the log
        self.committed = 0  # the log offset the processor committed last
        self.model: dict[str, oracle.Expected] = {}
        self.opened: dict[str, list[str]] = {u: [] for u in USERS}  # every connection ever opened
        self.closed: set[str] = set()  # connections the client closed: they never come back
        self.dropped: set[str] = set()  # connections whose transport broke: their edge beats no more
        self.late: list[Event] = []  # swept, not in the log yet
        for user in USERS:  # everyone starts with a device in the lobby, to get to busy states sooner
            self.connect(user, "web", None, None)
            self.join(user, 0, "lobby")

    # Plumbing: the log, the processor and the model.

    def event(self, cls: type[Event], user: str, connection_id: str, **fields: Any) -> Event:
        self.ids += 1
        return cls(event_id=f"e{self.ids}", user_id=user, connection_id=connection_id, edge_id="edge",
                   at=self.now, **fields)

    def write(self, *events: Event) -> None:
        for e in events:
            self.log.append(e)
            self.states[e.user_id], _ = apply_at(self.states.get(e.user_id), e, len(self.log) - 1, 0)
            self.tables.append(dict(self.states))
            oracle.step(self.model.setdefault(e.user_id, oracle.Expected(user_id=e.user_id)), e)

    def connection(self, user: str, pick: int) -> str:
        live = [c.connection_id for c in self.states[user].connections] if user in self.states else []
        known = live + self.opened[user]
        return known[pick % len(known)] if known else f"{user}-never-opened"

    def channel(self, user: str, connection_id: str, pick: int) -> str:
        state = self.states.get(user)
        mine = [ch for c in state.connections if c.connection_id == connection_id for ch in c.channels] if state else []
        known = mine + list(CHANNELS)
        return known[pick % len(known)]

    def sweep(self) -> list[Event]:
        return [e for state in self.states.values() for e in due_events(state, self.now, "sweeper")]

    # What clients do.

    @rule(user=users, device=st.sampled_from((None, "web", "ios")), status=st.sampled_from((None, "online", "busy")),
          meta=metadata)
    def connect(self, user: str, device: str | None, status: str | None, meta: dict[str, Any] | None) -> None:
        connection_id = f"{user}-c{len(self.opened[user])}"
        self.opened[user].append(connection_id)
        self.write(self.event(ConnectionOpened, user, connection_id, timeout_ms=TIMEOUT_MS, status=status,
                              device=device, metadata=meta, idle_after_ms=POLICY.idle_after_ms))

    @rule(user=users, pick=picks, idle_for=st.sampled_from((None, None, 0, 1_000, 25_000)))
    def heartbeat(self, user: str, pick: int, idle_for: int | None) -> None:
        active_at = None if idle_for is None else self.now - idle_for
        self.write(self.event(Heartbeat, user, self.connection(user, pick), active_at=active_at))

    @rule(user=users, pick=picks)
    def close(self, user: str, pick: int) -> None:
        connection_id = self.connection(user, pick)
        self.closed.add(connection_id)
        self.write(self.event(ConnectionClosed, user, connection_id))

    @rule(user=users, pick=picks, grace=st.sampled_from((0, 5_000, 15_000)))
    def drop(self, user: str, pick: int, grace: int) -> None:
        connection_id = self.connection(user, pick)
        self.dropped.add(connection_id)
        self.write(self.event(ConnectionDropped, user, connection_id, grace_ms=grace))

    @rule(user=users, pick=picks, channel=channels)
    def join(self, user: str, pick: int, channel: str) -> None:
        self.write(self.event(ChannelJoined, user, self.connection(user, pick), channel=channel,
                              timeout_ms=POLICY.channel_timeout_ms(channel)))

    @rule(user=users, pick=picks, in_channel=in_channels)
    def leave(self, user: str, pick: int, in_channel: int) -> None:
        connection_id = self.connection(user, pick)
        channel = self.channel(user, connection_id, in_channel)
        self.write(self.event(ChannelLeft, user, connection_id, channel=channel))

    @rule(user=users, pick=st.none() | picks, status=st.none() | st.sampled_from(sorted(POLICY.states)),
          text=texts, emoji=st.sampled_from((None, "", "🍜")), expires_in_s=st.sampled_from((None, None, 5, 40)),
          meta=metadata, timeout_s=st.sampled_from((None, None, 6, 120)))
    def update(self, user: str, pick: int | None, status: str | None, text: str | None, emoji: str | None,
               expires_in_s: int | None, meta: dict[str, Any] | None, timeout_s: int | None) -> None:
        status_metadata = {"room": "Orion"} if status == "in-a-meeting" else None
        request = Update(status=status, status_metadata=status_metadata, status_text=text, status_emoji=emoji,
                         expires_in_s=expires_in_s, metadata=meta, timeout_s=timeout_s)
        connection_id = REST if pick is None else self.connection(user, pick)
        self.ids += 1
        self.write(update_event(request, POLICY, event_id=f"e{self.ids}", user_id=user,
                                connection_id=connection_id, edge_id="edge", at=self.now))

    @rule(user=users, pick=picks, in_channel=in_channels, requested_s=st.sampled_from((None, 2, 60)))
    def start_typing(self, user: str, pick: int, in_channel: int, requested_s: int | None) -> None:
        connection_id = self.connection(user, pick)
        channel = self.channel(user, connection_id, in_channel)
        expires_at = self.now + POLICY.typing_timeout_ms(channel, requested_s)
        self.write(self.event(TypingStarted, user, connection_id, channel=channel, expires_at=expires_at))

    @rule(user=users, pick=picks, in_channel=in_channels)
    def stop_typing(self, user: str, pick: int, in_channel: int) -> None:
        connection_id = self.connection(user, pick)
        channel = self.channel(user, connection_id, in_channel)
        self.write(self.event(TypingStopped, user, connection_id, channel=channel))

    # The clock, the sweeper and the processor.

    @rule(ms=st.sampled_from((200, 1_000, 4_000, 9_000, 16_000, 31_000)),
          beats=st.sampled_from(("none", "quiet", "active")))
    def advance_and_sweep(self, ms: int, beats: str) -> None:
        """Time passes; halfway the edges may beat for every socket they still hold, then the sweeper runs."""
        self.now += ms // 2
        if beats != "none":
            held = [(u, c) for u in USERS for c in self.opened[u] if c not in self.closed | self.dropped]
            self.write(*(self.event(Heartbeat, u, c, active_at=self.now if beats == "active" else None)
                         for u, c in held))
        self.now += ms - ms // 2
        self.write(*self.sweep())
        for state in self.states.values():
            for c in state.connections:
                assert c.deadline > self.now, (state.user_id, c)
            assert all(expires_at > self.now for expires_at in state.typing.values()), state
            assert state.status_expires_at is None or state.status_expires_at > self.now, state
        for expected in self.model.values():
            assert all(c.deadline() > self.now for c in expected.conns.values()), expected
        # An expired status can make auto-away due only now: the next sweep, at the same time, does it.
        self.write(*self.sweep())
        assert self.sweep() == []

    @rule(ms=st.sampled_from((0, 1_000, 9_000, 31_000)))
    def sweep_lands_late(self, ms: int) -> None:
        """The sweep's events reach the log after what clients do next (which may make them stale)."""
        self.now += ms
        self.late += self.sweep()

    @precondition(lambda self: self.late)
    @rule()
    def late_sweep_lands(self) -> None:
        late, self.late = self.late, []
        self.write(*late)

    @precondition(lambda self: self.log)
    @rule(back=st.integers(min_value=1, max_value=20))
    def producer_retry(self, back: int) -> None:
        """A recent event is in the log twice: the second copy changes nothing."""
        before = dict(self.states)
        self.write(self.log[-min(back, len(self.log))])
        assert {u: user_view(s) for u, s in self.states.items()} == {u: user_view(s) for u, s in before.items()}
        assert {u: s.connections for u, s in self.states.items()} == {u: s.connections for u, s in before.items()}

    @rule()
    def commit(self) -> None:
        self.committed = len(self.log)

    @rule(points=st.lists(st.floats(min_value=0, max_value=1), min_size=len(USERS), max_size=len(USERS)))
    def restart(self, points: list[float]) -> None:
        """Each user's state comes back from the changelog, written somewhere between the last commit and
        the last event; then the processor redoes every event since the commit."""
        restored: dict[str, UserPresence] = {}
        for user, point in zip(USERS, points, strict=True):
            offset = self.committed + round(point * (len(self.log) - self.committed))
            if user in self.tables[offset]:
                restored[user] = self.tables[offset][user]
        for offset, e in enumerate(self.log[self.committed:], self.committed):
            restored[e.user_id], _ = apply_at(restored.get(e.user_id), e, offset, 0)
        assert restored == self.states
        self.committed = len(self.log)

    # After every step.

    @invariant()
    def core_shows_what_the_model_expects(self) -> None:
        assert self.states.keys() == self.model.keys()
        for user, state in self.states.items():
            assert oracle.published_view(user_view(state)) == oracle.expected_view(self.model[user]), user

    @invariant()
    def no_connection_is_lost_or_counted_twice(self) -> None:
        for user, state in self.states.items():
            ids = [c.connection_id for c in state.connections]
            assert len(ids) == len(set(ids)), ids
            assert set(ids) == self.model[user].conns.keys()
            assert set(ids) <= set(self.opened[user]) and not set(ids) & self.closed
            # Channels and typing too: they decide timeouts and what channels show.
            assert {c.connection_id: set(c.channels) for c in state.connections} == {
                cid: set(c.channels) for cid, c in self.model[user].conns.items()
            }
            assert state.typing == self.model[user].typing


Presence.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
TestPresence = Presence.TestCase

"""Replay outside the processor (`streams.replay`): the tables a log folds into, their state hash, and
re-projecting a log under another policy."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.changes import MemberLeft, UserWentOffline
from schemas.events import EdgeLeased, Event, EventBatch
from streams.replay import Policy, Reprojection, Tables, state_hash
from tests.unit.test_core import closed, dropped, heartbeat, idled, joined, opened, timed_out, typing_started, updated

LOG: list[Event] = [
    opened("c1", 0), joined("c1", "room", 10), heartbeat("c1", 20_000),
    opened("c2", 1_000, "v"), joined("c2", "room", 1_010, "v"), dropped("c2", 2_000, "v"),
    typing_started("c1", "room", 21_000, 26_000),
]


def folded(events: list[Event], batch: int = 2) -> Tables:
    tables = Tables()
    for offset, start in enumerate(range(0, len(events), batch)):
        tables.fold(0, offset, EventBatch(events=tuple(events[start:start + batch])))
    return tables


def test_steps_carry_each_event_with_its_user_before_and_after() -> None:
    steps = Tables().fold(3, 7, EventBatch(events=(opened("c1", 0), joined("c1", "room", 10))))

    assert [(s.partition, s.offset, s.index, s.event.type) for s in steps] == [
        (3, 7, 0, "connection.opened"), (3, 7, 1, "channel.joined")]
    assert steps[0].before is None and steps[1].before is steps[0].after
    assert steps[1].after is not None and steps[1].after.channel_since == {"room": 10}
    assert [c.type for c in steps[1].changes] == ["member.joined"]


def test_the_hash_covers_users_and_members_but_not_how_the_channel_stage_numbered_them() -> None:
    one, other = folded(LOG, batch=2), folded(LOG, batch=3)  # other offsets: other positions
    renumbered = {k: replace(c, seq=c.seq + 5, applied_offset=99) for k, c in one.channels.items()}

    assert state_hash(one.users.values(), renumbered.values()) == state_hash(one.users.values(),
                                                                             one.channels.values())
    assert one.channels["room"].members == other.channels["room"].members
    assert state_hash(one.users.values(), one.channels.values()) != state_hash(
        folded(LOG[:-1]).users.values(), folded(LOG[:-1]).channels.values())


def test_an_empty_channel_not_yet_expired_does_not_count() -> None:
    tables = folded([opened("c1", 0), joined("c1", "room", 10), closed("c1", 20)])

    assert tables.channels["room"].members == ()
    assert state_hash(tables.users.values(), tables.channels.values()) == state_hash(tables.users.values(), [])


def test_leases_are_kept_per_edge_and_partition() -> None:
    tables = Tables()
    lease = EdgeLeased(event_id="l1", user_id="~p0", connection_id="", edge_id="edge-1", at=5, since=0, ttl_ms=9)
    tables.fold(0, 0, EventBatch(events=(lease,)))

    assert tables.leases[("edge-1", 0)].at == 5 and ("edge-1", 1) not in tables.leases
    assert tables.lease_of(0)("edge-1") == tables.leases[("edge-1", 0)] and tables.lease_of(1)("edge-1") is None


def reprojected(policy: Policy, events: list[Event]) -> Reprojection:
    reprojection = Reprojection(policy)
    for offset, event in enumerate(events):
        reprojection.fold(0, offset, EventBatch(events=(event,)))
    reprojection.finish()
    return reprojection


def test_a_shorter_timeout_times_out_at_the_new_deadline_with_its_own_sweeper_events() -> None:
    # The log: c1 opened at 0 (timeout 30 s), a heartbeat at 20 s, the live sweeper's timeout at 50 s.
    log = [opened("c1", 0), joined("c1", "room", 10), heartbeat("c1", 20_000), timed_out("c1", 50_000),
           opened("c9", 60_000, "later")]

    live = reprojected(Policy(), log)
    shorter = reprojected(Policy(timeout_ms=5_000), log)

    # Under the log's own policy the re-projection times c1 out at its deadline, 20 s + 30 s.
    assert [(c.type, c.at) for c in live.changes if isinstance(c, UserWentOffline)] == [("user.offline", 50_000)]
    # Under 5 s: due at 5 s after the open, before the heartbeat at 20 s could keep it (which then
    # names a connection that is gone and changes nothing).
    offline = [c for c in shorter.changes if isinstance(c, UserWentOffline)]
    assert [(c.at, c.reason, c.last_seen) for c in offline] == [(5_000, "timeout", 10)]
    assert [(c.type, c.at) for c in shorter.changes if isinstance(c, MemberLeft)] == [("member.left", 5_000)]
    assert "u" in shorter.tables.users and not shorter.tables.users["u"].online


def test_the_log_s_own_sweeper_events_are_dropped_and_the_idle_rule_replaced() -> None:
    log = [opened("c1", 0), idled(40_000, 30_000), heartbeat("c1", 100_000)]

    never_idle = reprojected(Policy(), log)
    idle_after_10s = reprojected(Policy(idle_after_ms=10_000), log)

    assert not never_idle.tables.users["u"].idle  # the log's user.idled was the live policy's; none stamped
    assert idle_after_10s.tables.users["u"].idle
    assert [(c.type, c.at) for c in idle_after_10s.changes if c.type == "user.status_changed"] == [
        ("user.status_changed", 10_000)]


def test_a_timeout_the_connection_s_own_edge_wrote_is_a_silence_that_counts_under_the_new_timeout() -> None:
    # edge-1 renews its lease every 10 s, so the sweeper never times c1 out; the edge closed c1 at
    # 10 s itself: nothing heard from the client since 9 s, with a 5 s timeout.
    leases: list[Event] = [EdgeLeased(event_id=f"lease@{t}", user_id="~p0", connection_id="", edge_id="edge-1",
                                      at=t, since=0, ttl_ms=20_000) for t in range(0, 200_001, 10_000)]
    by_edge = replace(timed_out("c1", 10_000), edge_id="edge-1", alive_at=9_000)
    log = sorted([opened("c1", 0, timeout=5_000), by_edge, *leases], key=lambda e: e.at)

    same = reprojected(Policy(), log)
    longer = reprojected(Policy(timeout_ms=60_000), log)

    assert [(c.at, c.last_seen) for c in same.changes if isinstance(c, UserWentOffline)] == [(10_000, 9_000)]
    # Silent since 9 s: under a 60 s timeout its edge would have closed it at 69 s.
    assert [(c.at, c.last_seen) for c in longer.changes if isinstance(c, UserWentOffline)] == [(69_000, 9_000)]


@pytest.mark.parametrize("raw", [b'{"timeout": 5}', b'{"timeout_ms": -1}', b'[1]', b'{"grace_ms": "5"}'])
def test_a_policy_with_unknown_keys_or_bad_values_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Policy.from_json(raw)


def test_a_policy_file_names_milliseconds() -> None:
    assert Policy.from_json(b'{"timeout_ms": 5000, "user_retention_ms": null}') == Policy(
        timeout_ms=5_000, user_retention_ms=None)


def test_a_replay_from_a_users_snapshot_ends_with_the_hash_of_a_replay_from_the_start() -> None:
    lease = EdgeLeased(event_id="l1", user_id="~p0", connection_id="", edge_id="edge-1", at=0, since=0, ttl_ms=90_000)
    log = [lease, *LOG, updated(22_000, status="busy", text="deep work"), joined("c1", "hall", 23_000),
           closed("c2", 24_000, "v")]
    whole = folded(log, batch=1)
    for cut in range(1, len(log)):
        head = folded(log[:cut], batch=1)
        tail = Tables.from_snapshot(head.users.values(), [(p, lease) for (_, p), lease in head.leases.items()])
        for offset in range(cut, len(log)):
            tail.fold(0, offset, EventBatch(events=(log[offset],)))

        assert state_hash(tail.users.values(), tail.channels.values()) == state_hash(
            whole.users.values(), whole.channels.values()), cut


def test_a_replay_of_users_alone_with_channels_rebuilt_at_the_end_has_the_same_hash() -> None:
    log = [*LOG, updated(22_000, status="busy", text="deep work"), joined("c1", "hall", 23_000)]
    whole = folded(log, batch=1)
    quiet = Tables(announce=False)
    for offset, event in enumerate(log):
        assert quiet.fold(0, offset, EventBatch(events=(event,)))[0].changes == ()
    assert quiet.channels == {}
    quiet.rebuild_channels()

    assert state_hash(quiet.users.values(), quiet.channels.values()) == state_hash(whole.users.values(),
                                                                                   whole.channels.values())

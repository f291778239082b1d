"""The edge's channel fold: from the channel stage's changelog and the changes after the processor's
committed offset, every edge publishes the views the channel stage publishes, with the same `seq`."""

from __future__ import annotations

from dataclasses import replace

from aiokafka.structs import ConsumerRecord

from schemas.changes import ChannelChange, ChannelExpired, ChannelView, UserView
from schemas.codec import encode
from schemas.state import ChannelState
from services.read_model import ReadModel
from streams.channels import apply_member_change_at
from tests.unit.test_channels import CHANNEL, join, leave, typing, update


def channel_stage(log: list[ChannelChange]) -> tuple[list[ChannelState | None], list[ChannelView]]:
    """What the channel stage holds after each record of `log` (offset = index), and the views it publishes."""
    state: ChannelState | None = None
    states: list[ChannelState | None] = []
    views: list[ChannelView] = []
    for offset, change in enumerate(log):
        state, view = apply_member_change_at(state, change, offset)
        states.append(state)
        if view is not None:
            views.append(view)
    return states, views


def edge() -> tuple[ReadModel, list[tuple[ChannelView, int]]]:
    published: list[tuple[ChannelView, int]] = []
    return ReadModel(consumer=None, bootstrap_servers="", listener=lambda v, s: published.append((v, s))), published  # type: ignore[arg-type]


LOG: list[ChannelChange] = [
    join("ann", 10), join("bob", 11), update("ann", 12, status="away"), typing("bob", 13),
    join("cid", 14), leave("bob", 15), update("cid", 16, status="busy"), leave("ann", 17),
]


def test_an_edge_folding_the_whole_log_publishes_the_channel_stages_views() -> None:
    _, stage_views = channel_stage(LOG)
    model, published = edge()

    for offset, change in enumerate(LOG):
        model.apply_change(change, offset)

    assert [v for v, _ in published] == stage_views
    assert [previous for _, previous in published] == [0] + [v.seq for v in stage_views[:-1]]
    assert model.view(CHANNEL).seq == stage_views[-1].seq
    assert model.view(CHANNEL).members == stage_views[-1].members


def test_an_edge_starting_from_a_changelog_ahead_of_the_committed_offset_skips_what_the_state_holds() -> None:
    states, stage_views = channel_stage(LOG)
    committed, snapshot_at = 3, 5  # the changelog may be ahead of the commit, never behind it
    snapshot = states[snapshot_at]
    assert snapshot is not None
    model, published = edge()
    model.start_from(snapshot)

    for offset in range(committed, len(LOG)):
        model.apply_change(LOG[offset], offset)

    after_snapshot = [v for v in stage_views if v.seq > snapshot.seq]
    assert [v for v, _ in published] == after_snapshot
    assert model.view(CHANNEL).seq == stage_views[-1].seq


def test_a_resume_gets_the_views_folded_since_and_a_snapshot_for_what_the_edge_never_held() -> None:
    states, stage_views = channel_stage(LOG)
    model, _ = edge()
    start = states[3]
    assert start is not None
    model.start_from(start)
    for offset in range(4, len(LOG)):
        model.apply_change(LOG[offset], offset)

    assert model.views_since(CHANNEL, start.seq) == [v for v in stage_views if v.seq > start.seq]
    assert model.views_since(CHANNEL, start.seq - 1) is None  # folded before this edge started
    assert model.views_since(CHANNEL, model.view(CHANNEL).seq) == []


def test_an_expired_channel_is_dropped_and_its_subscribers_start_over_from_seq_0() -> None:
    log: list[ChannelChange] = [join("ann", 10), leave("ann", 11)]
    states, _ = channel_stage(log)
    emptied = states[-1]
    assert emptied is not None
    log.append(ChannelExpired(change_id="expired", user_id="", at=20, channel=CHANNEL, empty_since=emptied.changed_at))
    model, published = edge()

    for offset, change in enumerate(log):
        model.apply_change(change, offset)

    assert published[-1] == (ChannelView(channel=CHANNEL, seq=0, at=0, members=()), emptied.seq)
    assert model.view(CHANNEL).seq == 0
    assert model.views_since(CHANNEL, emptied.seq) is None


def in_channel(change: ChannelChange, channel: str) -> ChannelChange:
    return replace(change, channel=channel)


def derived_index(model: ReadModel) -> dict[str, set[str]]:
    """The channels of each user, from the members of every channel: what the index must hold."""
    index: dict[str, set[str]] = {}
    for state in model.channels():
        for m in state.members:
            index.setdefault(m.user_id, set()).add(state.channel)
    return index


def index_of(model: ReadModel, users: list[str]) -> dict[str, set[str]]:
    return {u: set(model.channels_of(u)) for u in users if model.channels_of(u)}


def test_the_channels_of_each_user_follow_joins_leaves_and_expiry_across_channels() -> None:
    log: list[ChannelChange] = [
        join("ann", 10), in_channel(join("ann", 11), "b"), in_channel(join("bob", 12), "b"), typing("ann", 13),
        update("ann", 14, status="away"), leave("ann", 15), in_channel(leave("bob", 16), "b"),
        ChannelExpired(change_id="expired", user_id="", at=30, channel=CHANNEL, empty_since=15),
        join("bob", 31),
    ]
    model, _ = edge()
    moved: list[tuple[str, str | None]] = []
    model.user_listener = lambda user_id, channel: moved.append((user_id, channel))
    for offset, change in enumerate(log):
        model.apply_change(change, offset)
        assert index_of(model, ["ann", "bob"]) == derived_index(model)
    assert set(model.channels_of("ann")) == {"b"} and set(model.channels_of("bob")) == {CHANNEL}
    assert set(model.channels_of("nobody")) == set()
    # Told of every user whose channels changed, once per move; typing and updates move nobody.
    assert moved == [("ann", CHANNEL), ("ann", "b"), ("bob", "b"), ("ann", CHANNEL), ("bob", "b"), ("bob", CHANNEL)]


def test_a_state_from_the_changelog_replaces_what_the_index_held_of_that_channel() -> None:
    states, _ = channel_stage([join("ann", 10), join("bob", 11), leave("ann", 12)])
    model, _ = edge()
    model.apply_change(in_channel(join("ann", 5), "b"), 0)
    early, late = states[1], states[2]
    assert early is not None and late is not None
    model.start_from(early)
    assert index_of(model, ["ann", "bob"]) == {"ann": {"b", CHANNEL}, "bob": {CHANNEL}}
    model.start_from(late)
    assert index_of(model, ["ann", "bob"]) == {"ann": {"b"}, "bob": {CHANNEL}} == derived_index(model)


def test_a_users_tombstone_and_a_new_view_tell_the_listener() -> None:
    model, _ = edge()
    moved: list[tuple[str, str | None]] = []
    model.user_listener = lambda user_id, channel: moved.append((user_id, channel))
    view = UserView(user_id="ann", status="online", online=True, last_seen=1, connections=1)
    model._apply_user(record(b"ann", encode(view)))
    assert model.user("ann") == view
    model._apply_user(record(b"ann", None))
    assert model.user("ann") is None
    assert moved == [("ann", None), ("ann", None)]


def record(key: bytes, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="presence.users", partition=0, offset=0, timestamp=0, timestamp_type=0, key=key,
                          value=value, checksum=None, serialized_key_size=len(key),
                          serialized_value_size=len(value or b""), headers=[])

"""The edge's channel fold: from the channel stage's changelog and the changes after the processor's
committed offset, every edge publishes the views the channel stage publishes, with the same `seq`."""

from __future__ import annotations

from schemas.changes import ChannelChange, ChannelExpired, ChannelView
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

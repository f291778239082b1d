"""The fold sees each partition's records once and in offset order, holes filled (defect A)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP
from intervaltree import IntervalTree

from streams import continuity
from streams.continuity import Continuity, InOrder, Record

EVENTS = TP("presence.events", 2)
OTHER = TP("presence.events", 3)


def test_the_first_record_after_an_assignment_is_expected_at_the_committed_offset() -> None:
    c = Continuity()
    assert c.missing(EVENTS, 245, start=245) == range(0)
    assert c.missing(EVENTS, 250, start=245) == range(245, 250)
    assert c.missing(EVENTS, 7, start=None) == range(0)


def test_a_hole_in_the_middle_of_an_assignment_is_named() -> None:
    c = Continuity()
    for offset in range(245, 295):
        assert c.missing(EVENTS, offset, start=245) == range(0)
        c.applied(EVENTS, offset)
    assert c.missing(EVENTS, 334, start=245) == range(295, 334)
    assert c.missing(OTHER, 12, start=10) == range(10, 12)


def test_an_offset_applied_already_is_skipped_and_a_revoked_partition_starts_again() -> None:
    c = Continuity()
    c.applied(EVENTS, 300)
    assert c.missing(EVENTS, 300, start=245) is None
    c.forget([EVENTS])
    assert c.missing(EVENTS, 245, start=245) == range(0)


@dataclass
class FakeMessage:
    tp: TP
    offset: int
    key: bytes = b"k"


@dataclass
class FakeEvent:
    message: FakeMessage
    value: bytes


@dataclass
class FakeStream:
    offsets: list[int]

    async def events(self) -> Any:
        for offset in self.offsets:
            yield FakeEvent(FakeMessage(EVENTS, offset), f"v{offset}".encode())


@dataclass
class FakeConsumer:
    """The two fields of Faust's consumer that its gap bookkeeping (`Consumer._add_gap`) touches."""

    _committed_offset: dict[TP, int | None]
    _gap: defaultdict[TP, IntervalTree] = field(default_factory=lambda: defaultdict(IntervalTree))

    def done(self, tp: TP) -> list[tuple[int, int]]:
        return sorted((interval.begin, interval.end) for interval in self._gap[tp])


class FakeSignal:
    def connect(self, receiver: Any) -> None:
        self.receiver = receiver


@dataclass
class FakeApp:
    consumer: FakeConsumer
    on_partitions_revoked: FakeSignal = field(default_factory=FakeSignal)


@dataclass
class FakeReader:
    """The broker as the fold's own consumer sees it: committed offsets, and the records it reads."""

    start_offsets: dict[TP, int]
    reads: list[range] = field(default_factory=list)
    asked: list[TP] = field(default_factory=list)

    async def start_offset(self, tp: TP) -> int:
        self.asked.append(tp)
        return self.start_offsets[tp]

    async def read(self, tp: TP, offsets: range) -> list[Record]:
        self.reads.append(offsets)
        return [Record(tp.topic, tp.partition, o, b"k", f"read{o}".encode()) for o in offsets]


async def test_records_around_a_hole_come_in_order_and_faust_may_commit_past_it() -> None:
    app, reader = FakeApp(FakeConsumer(defaultdict(lambda: None))), FakeReader({EVENTS: 10})
    in_order = InOrder(app, reader)  # type: ignore[arg-type]
    # 10-11 delivered, 12-14 dropped by Faust, 15 delivered, then a redo of 11 (applied already).
    seen = [r async for r in in_order.records(FakeStream([10, 11, 15, 11, 16]))]
    assert [(r.offset, r.value) for r in seen] == [
        (10, b"v10"), (11, b"v11"), (12, b"read12"), (13, b"read13"), (14, b"read14"), (15, b"v15"), (16, b"v16")]
    assert reader.reads == [range(12, 15)]
    assert reader.asked == [EVENTS]  # where the group resumes is asked once per assignment
    assert app.consumer.done(EVENTS) == [(12, 15)]  # Faust may now commit up to 15


async def test_a_partition_started_past_its_committed_offset_gets_the_skipped_records_first() -> None:
    app, reader = FakeApp(FakeConsumer(defaultdict(lambda: None))), FakeReader({EVENTS: 151})
    in_order = InOrder(app, reader)  # type: ignore[arg-type]
    assert [r.offset async for r in in_order.records(FakeStream([226, 227]))] == [*range(151, 226), 226, 227]
    assert reader.reads == [range(151, 226)]


async def test_a_revoke_resets_the_expectation_to_the_committed_offset() -> None:
    app, reader = FakeApp(FakeConsumer(defaultdict(lambda: None))), FakeReader({EVENTS: 10})
    in_order = InOrder(app, reader)  # type: ignore[arg-type]
    assert [r.offset async for r in in_order.records(FakeStream([10, 11, 12]))] == [10, 11, 12]
    await app.on_partitions_revoked.receiver(app, {EVENTS})
    # Faust redoes from the committed offset after the rebalance: every record is applied again.
    assert [r.offset async for r in in_order.records(FakeStream([10, 11, 12, 13]))] == [10, 11, 12, 13]
    assert reader.reads == [] and reader.asked == [EVENTS, EVENTS]


async def test_offsets_faust_skipped_are_not_marked_done_behind_the_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Consumer, "_add_gap", Consumer._add_gap)  # undone after the test
    consumer = FakeConsumer(defaultdict(lambda: None, {EVENTS: 10}))
    await Consumer._add_gap(consumer, EVENTS, 12, 14)  # type: ignore[arg-type]
    assert consumer.done(EVENTS) == [(12, 15)]  # Faust's own behaviour: its commit would pass 12-14

    continuity.leave_skipped_offsets_unacknowledged()
    await Consumer._add_gap(consumer, OTHER, 12, 14)  # type: ignore[arg-type]

    assert consumer.done(OTHER) == []

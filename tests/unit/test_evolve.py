"""`schemas.evolve.evolve` is `dataclasses.replace` for the state records, only faster."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.evolve import evolve
from schemas.state import ChannelState, Connection, EdgeLease, UserPresence

RECORDS = [
    UserPresence(user_id="u", metadata={"a": 1}, connections=(Connection(connection_id="c", edge_id="e", opened_at=1,
                                                                          last_heartbeat=2, timeout_ms=3),)),
    Connection(connection_id="c", edge_id="e", opened_at=1, last_heartbeat=2, timeout_ms=3, channels=("x",)),
    ChannelState(channel="x", seq=4),
    EdgeLease(edge_id="e", since=1, at=2, ttl_ms=3),
]


@pytest.mark.parametrize("record", RECORDS, ids=lambda r: type(r).__name__)
def test_evolve_equals_replace_and_leaves_the_original(record: object) -> None:
    field = next(iter(type(record).__slots__))  # type: ignore[attr-defined]
    changed = evolve(record, **{field: "other"})

    assert changed == replace(record, **{field: "other"})  # type: ignore[type-var]
    assert evolve(record) == record and evolve(record) is not record
    assert getattr(record, field) != "other"
    with pytest.raises(AttributeError):
        setattr(changed, field, "again")  # still frozen


def test_evolve_refuses_a_field_the_record_has_not() -> None:
    with pytest.raises(TypeError):
        evolve(RECORDS[3], ttl=5)

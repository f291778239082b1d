"""`evolve`: a copy of a frozen, slotted record with some fields changed, without running its `__init__`.

`dataclasses.replace` builds the copy through `__init__`, which for a frozen record sets every field
with `object.__setattr__` and runs the default factories again: most of the time the presence core
spends on a heartbeat (bench/history.py profiles it). The records here have no `__post_init__` and
no `init=False` fields, so copying the slots is the same record.
"""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any, TypeVar, cast

T = TypeVar("T")

_set = object.__setattr__


@cache
def _fields(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))  # a subclass's __slots__ name only its own


def evolve(record: T, **changes: Any) -> T:
    cls = type(record)
    copy: T = object.__new__(cls)
    for name in _fields(cast(Any, cls)):  # `cache` wants a Hashable; a class is one
        _set(copy, name, changes.pop(name) if name in changes else getattr(record, name))
    if changes:
        raise TypeError(f"{cls.__name__} has no field {sorted(changes)}")
    return copy

"""Dead letters: records the processor could not handle, kept with the reason, so the partition goes on."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.events import SCHEMA_VERSION


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A record of `topic` at `partition`/`offset` that failed; `value` is its text as it was read."""

    topic: str
    partition: int
    offset: int
    error: str
    value: str
    worker_id: str
    v: int = SCHEMA_VERSION

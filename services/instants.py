"""Instants as requests and commands give them: UTC epoch milliseconds, or ISO 8601 with a time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_EPOCH_MS = 253402300799999  # 9999-12-31T23:59:59.999Z, the last instant ISO 8601 and Python can write


def instant(raw: str, name: str) -> int:
    """UTC epoch milliseconds from epoch milliseconds or an ISO 8601 time with a zone (`2026-12-07T10:00:00Z`)."""
    if raw.isascii() and raw.isdigit():  # isdigit alone takes "²"
        if len(raw) > len(str(MAX_EPOCH_MS)) or int(raw) > MAX_EPOCH_MS:
            raise ValueError(f"`{name}` is out of range")
        return int(raw)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"`{name}` must be epoch milliseconds or an ISO 8601 time such as 2026-12-07T10:00:00Z"
                         ) from None
    if when.tzinfo is None:
        raise ValueError(f"`{name}` must name its time zone (`Z` for UTC)")
    ms = (when - _EPOCH) // timedelta(milliseconds=1)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError(f"`{name}` is out of range")
    return ms

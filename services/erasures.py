"""The erased users, read from `presence.erasures` (compacted, one record per user: its latest erasure).

Every history read asks it which users to leave out: what the log holds of a user at or before the
user's `erased_at` is erased (docs/history.md#erasure). The topic is small (one record per erased user),
so it is read whole.
"""

from __future__ import annotations

from schemas.codec import DecodeError, decode
from schemas.erasures import UserErasure
from schemas.topics import ERASURES
from services import log_reader

Erased = dict[str, int]  # user id -> erased_at, UTC epoch milliseconds


async def erased(bootstrap: str) -> Erased:
    """Each erased user's latest erasure time; empty when the topic does not exist yet."""
    found: Erased = {}
    async for batch in log_reader.read(bootstrap, ERASURES.name):
        for record in batch:
            if record.value is None:
                continue
            try:
                erasure = decode(record.value, UserErasure)
            except DecodeError:
                continue
            found[erasure.user_id] = max(erasure.erased_at, found.get(erasure.user_id, erasure.erased_at))
    return found


def hides(erasures: Erased, user_id: str, at: int) -> bool:
    """Whether what the log says of `user_id` at `at` is erased."""
    erased_at = erasures.get(user_id)
    return erased_at is not None and at <= erased_at

"""Victims and the observer who sees them leave: the ghost measurement of promise 2, shared by
`test_ghosts.py` and `test_processor_lag.py`.

The ghost time of a victim runs from its connection's latest heartbeat `at` in `presence.events`
(the time the core judges the deadline from) to the moment an observer subscribed to its channel
receives the victim's departure.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.chaos.load import Peer
from tests.chaos.verdict import Verdict
from tests.integration.stack import eventually


def make_disappear(kind: str, peer: Peer) -> None:
    """"vanished": TCP reset, no close frame, no leave; "half-open": the client stops sending and
    reading, the socket stays open."""
    if kind == "vanished":
        peer.abort()
    elif kind == "half-open":
        peer.go_half_open()
    else:
        raise ValueError(kind)


async def departures_seen(observer: Peer, victims: list[Peer], timeout_s: float) -> None:
    """Until the observer saw every victim leave; a victim never seen leaving is reported, not waited for."""
    with contextlib.suppress(TimeoutError):
        await eventually(lambda: all(p.user_id in observer.left_seen for p in victims), timeout_s=timeout_s)


def ghost_times(observer: Peer, victims: list[tuple[str, Peer]], verdict: Verdict
                ) -> tuple[dict[str, list[int | None]], dict[str, list[dict[str, int | None]]]]:
    """Per kind of victim, in ms: each ghost time (None: never seen leaving), and each timeline
    (drop, timeout stamped and written, offline view, observer) after the last heartbeat."""
    ghosts: dict[str, list[int | None]] = {}
    timelines: dict[str, list[dict[str, int | None]]] = {}
    for kind, peer in victims:
        seen = observer.left_seen.get(peer.user_id)
        # a half-open client may heartbeat again after it was shown offline: only what came before counts
        last = verdict.heartbeat_before(peer.connection_id, peer.ended_ms)
        ghost = None if seen is None else seen - last
        ghosts.setdefault(kind, []).append(ghost)
        timelines.setdefault(kind, []).append({**verdict.timeline(peer.user_id, peer.connection_id, last),
                                               "observer": ghost})
    return ghosts, timelines


def worst(ghosts: dict[str, list[int | None]]) -> int:
    """The largest ghost time; a victim never seen leaving counts as endless."""
    return max((g if g is not None else 10**9) for gs in ghosts.values() for g in gs)


def figures_of(observer: Peer, victims: list[tuple[str, Peer]], verdict: Verdict) -> dict[str, Any]:
    ghosts, timelines = ghost_times(observer, victims, verdict)
    return {"ghost ms, last heartbeat in the log -> observer sees the departure": ghosts,
            "max ghost (ms)": worst(ghosts),
            "timelines (ms after the last heartbeat)": timelines}

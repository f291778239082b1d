"""How presence records look in API output: times as UTC epoch ms plus ISO 8601."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from schemas.changes import ChannelView, Departure, Member


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member(m: Member) -> dict[str, Any]:
    return {
        "user_id": m.user_id,
        "status": m.status,
        "connections": m.connections,
        "joined_at": m.joined_at,
        "joined_at_iso": iso(m.joined_at),
        "last_seen": m.last_seen,
        "last_seen_iso": iso(m.last_seen),
        "metadata": m.metadata,
    }


def departure(d: Departure) -> dict[str, Any]:
    return {"user_id": d.user_id, "reason": d.reason, "last_seen": d.last_seen, "last_seen_iso": iso(d.last_seen)}


def snapshot(view: ChannelView) -> dict[str, Any]:
    return {
        "channel": view.channel,
        "seq": view.seq,
        "occupancy": len(view.members),
        "members": [member(m) for m in view.members],
    }


def diff(view: ChannelView) -> dict[str, Any]:
    return {
        "channel": view.channel,
        "seq": view.seq,
        "at": view.at,
        "at_iso": iso(view.at),
        "occupancy": len(view.members),
        "joins": [member(m) for m in view.joins],
        "leaves": [departure(d) for d in view.leaves],
        "updates": [member(m) for m in view.updates],
    }

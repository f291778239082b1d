"""How presence records look in API output: times as UTC epoch ms plus ISO 8601."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from schemas.changes import ChannelView, Departure, Member, UserView
from services.history import ChannelAt


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def member(m: Member, include_metadata: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user_id": m.user_id,
        "status": m.status,
        "status_text": m.status_text,
        "status_emoji": m.status_emoji,
        "connections": m.connections,
        "devices": list(m.devices),
        "joined_at": m.joined_at,
        "joined_at_iso": iso(m.joined_at),
        "last_seen": m.last_seen,
        "last_seen_iso": iso(m.last_seen),
    }
    if include_metadata:
        body["metadata"] = m.metadata
        body["status_metadata"] = m.status_metadata
    return body


def departure(d: Departure) -> dict[str, Any]:
    return {"user_id": d.user_id, "reason": d.reason, "last_seen": d.last_seen, "last_seen_iso": iso(d.last_seen)}


def user(view: UserView, channels: Iterable[str] = ()) -> dict[str, Any]:
    """`channels`: those the user is present in that the reader may see (services.visibility)."""
    return {
        "user_id": view.user_id,
        "status": view.status,
        "active": view.online,
        "last_seen": view.last_seen,
        "last_seen_iso": iso(view.last_seen),
        "connections": view.connections,
        "devices": list(view.devices),
        "status_text": view.status_text,
        "status_emoji": view.status_emoji,
        "status_metadata": view.status_metadata,
        "status_expires_at": view.status_expires_at,
        "status_expires_at_iso": iso(view.status_expires_at),
        "metadata": view.metadata,
        "channels": list(channels),
    }


def snapshot(view: ChannelView) -> dict[str, Any]:
    return {
        "channel": view.channel,
        "seq": view.seq,
        "occupancy": len(view.members),
        "members": [member(m) for m in view.members],
        "typing": list(view.typing),
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
        "typing": list(view.typing),
    }


def channel_at(past: ChannelAt) -> dict[str, Any]:
    """A channel's members at a past instant: the shape of a live read, plus the instant and the log
    position that answers it (`from_snapshot`: the offset its fold started at, null for the log's start)."""
    state = past.state
    return {
        "channel": past.channel,
        "seq": state.seq if state is not None else 0,
        "occupancy": len(state.members) if state is not None else 0,
        "typing": list(state.typing) if state is not None else [],
        "at": past.at,
        "at_iso": iso(past.at),
        "position": {"partition": past.partition, "offset": past.position, "from_snapshot": past.snapshot_position},
    }

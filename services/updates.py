"""Turning a client's presence update into the event the log records, with policy stamped in."""

from __future__ import annotations

from schemas.events import PresenceUpdated
from services.policy import Policy
from services.protocol import Update


def update_event(update: Update, policy: Policy, *, event_id: str, user_id: str, connection_id: str,
                 edge_id: str, at: int, service: str | None = None) -> PresenceUpdated:
    spec = policy.state(update.status) if update.status is not None else None
    expiries = [s for s in (update.expires_in_s, spec.expires_after_s if spec else None) if s is not None]
    timeout_ms = None
    if update.timeout_s is not None:
        timeout_ms = policy.user_timeout_ms(update.timeout_s)
    elif spec is not None and spec.timeout_s is not None:
        timeout_ms = int(spec.timeout_s * 1000)
    return PresenceUpdated(
        event_id=event_id,
        user_id=user_id,
        connection_id=connection_id,
        edge_id=edge_id,
        at=at,
        service=service,
        status=update.status,
        status_metadata=update.status_metadata,
        metadata=update.metadata,
        status_text=update.status_text,
        status_emoji=update.status_emoji,
        expires_at=at + int(min(expiries) * 1000) if expiries else None,
        visible=spec.counts_as_online if spec is not None else True,
        timeout_ms=timeout_ms,
    )

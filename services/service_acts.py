"""What a backend service may do to a user with its service key (services/auth.py), besides setting the
user's presence (`rest.set_user_presence`): force the user offline.

Every act is an event in the log naming the service (`Event.service`), so the log says who did it.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from schemas.events import UserForcedOffline
from services import representation
from services.errors import ApiError
from services.event_log import new_id, now_ms
from services.rest import edge_of, principal_of

MAX_REASON_CHARS = 200


async def force_offline(request: Request) -> Response:
    """`POST /realtime/users/{user_id}/presence/offline`: every connection of the user ends; every edge
    closes the user's sockets with `connection.forced_offline` once the processor applied it."""
    principal = await principal_of(request)
    principal.require_service()
    edge = edge_of(request)
    reason = _reason(await request.body())
    at = now_ms()
    event = UserForcedOffline(
        event_id=new_id(), user_id=request.path_params["user_id"],
        connection_id=f"rest:{edge.settings.edge_id}", edge_id=edge.settings.edge_id, at=at,
        service=principal.service, reason=reason,
    )
    await edge.log.write(event)
    return JSONResponse({"event_id": event.event_id, "user_id": event.user_id, "service": event.service,
                         "reason": reason, "forced_offline_at": at, "forced_offline_at_iso": representation.iso(at)})


def _reason(raw: bytes) -> str | None:
    """The optional body `{"reason": "..."}`; an empty body gives none."""
    if not raw.strip():
        return None
    if len(raw) > 4 * MAX_REASON_CHARS + 64:
        raise ApiError("request.too_large", "the body exceeds its size limit")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("request.malformed_json", "the body is not valid JSON") from exc
    if not isinstance(body, dict) or not set(body) <= {"reason"}:
        raise ApiError("request.invalid", 'the body is `{"reason": "..."}` or empty')
    if "reason" not in body:
        return None
    reason = body["reason"]
    if not (isinstance(reason, str) and 1 <= len(reason) <= MAX_REASON_CHARS):
        raise ApiError("request.invalid", f"`reason` must be a string of 1 to {MAX_REASON_CHARS} characters")
    return reason

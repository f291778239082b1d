"""The error-code catalogue: one row per failure a client can see.

Codes are stable strings; clients switch on them, never on messages. Each code fixes the HTTP
status of a REST answer, the WebSocket close code when the failure ends the socket, and whether
retrying the same request can succeed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ErrorCode:
    code: str
    http_status: int
    ws_close: int | None  # None: the socket stays open and gets an `error` frame
    retriable: bool
    description: str


_CATALOGUE = (
    ErrorCode("auth.missing_token", 401, 4401, False, "No token was given."),
    ErrorCode("auth.invalid_token", 401, 4401, False, "The token is malformed, badly signed or expired."),
    ErrorCode("auth.origin_forbidden", 403, 4403, False, "The page's origin may not open a WebSocket here."),
    ErrorCode("auth.channel_forbidden", 403, None, False, "The token does not allow this channel."),
    ErrorCode("auth.service_only", 403, None, False, "Only a service key may use this route."),
    ErrorCode("auth.user_only", 403, None, False, "A service key may not act as a user here."),
    ErrorCode("auth.service_observer", 403, None, False, "A service's socket observes only: it is no user's presence."),
    ErrorCode("auth.user_mismatch", 403, None, False, "The new token is for another user than the socket's."),
    ErrorCode("auth.token_expired", 401, 4401, False, "The socket's token expired; the socket is closed."),
    ErrorCode("request.malformed_json", 400, None, False, "The body or frame is not valid JSON."),
    ErrorCode("request.unknown_type", 400, None, False, "The frame `type` is not one the server knows."),
    ErrorCode("request.invalid", 400, None, False, "A field is missing, unknown, or of the wrong type or value."),
    ErrorCode("request.too_large", 413, None, False, "The body, frame or metadata exceeds its size limit."),
    ErrorCode("request.binary_frame", 400, None, False, "Only JSON text frames are accepted."),
    ErrorCode("presence.unknown_status", 400, None, False, "The status is not one the server knows."),
    ErrorCode("presence.invalid_status_metadata", 400, None, False, "The status metadata does not fit its schema."),
    ErrorCode("presence.timeout_out_of_bounds", 400, None, False, "The requested timeout is outside the bounds."),
    ErrorCode("presence.forbidden_user", 403, None, False, "The payload names a user other than the caller."),
    ErrorCode("channel.not_joined", 409, None, False, "The connection has not joined this channel."),
    ErrorCode("channel.not_subscribed", 409, None, False, "The connection has not subscribed to this channel."),
    ErrorCode("channel.invalid_id", 400, None, False, "The channel id is empty, too long or has bad characters."),
    ErrorCode("limit.connections_per_user", 429, 4429, True, "The user has too many connections on this edge."),
    ErrorCode("limit.channels_per_connection", 429, None, False, "The connection has joined too many channels."),
    ErrorCode("limit.watched_users", 429, None, False, "The connection would watch more users than allowed."),
    ErrorCode("limit.rate", 429, None, True, "Frames came faster than allowed; this one was dropped."),
    ErrorCode("limit.abuse", 429, 1008, False, "Frames kept coming too fast; the socket is closed."),
    ErrorCode("connection.slow_consumer", 503, 1013, True, "The client did not read its frames fast enough."),
    ErrorCode("connection.timed_out", 408, 4408, True,
              "The connection sent nothing for longer than its presence timeout; the socket is closed."),
    ErrorCode("connection.forced_offline", 409, 4409, False,
              "A service forced the user offline; the socket is closed and must not reconnect by itself."),
    ErrorCode("service.broker_unavailable", 503, 1013, True, "The event log did not acknowledge in time."),
    ErrorCode("service.processor_lagging", 503, None, True, "The update was logged but not applied in time."),
    ErrorCode("user.not_found", 404, None, False, "No presence is held for this user, or the caller may not read it."),
    ErrorCode("history.forbidden_user", 403, None, False, "A user's history may be read by that user only."),
    ErrorCode("service.not_ready", 503, 1013, True,
              "The read model has not caught up with the log yet, or the processor does not answer."),
    ErrorCode("route.not_found", 404, None, False, "No such route."),
    ErrorCode("route.upgrade_required", 426, None, False, "This path takes WebSocket connections only."),
    ErrorCode("route.method_not_allowed", 405, None, False, "The route does not accept this method."),
    ErrorCode("server.internal", 500, 1011, True, "An unexpected server error; it was logged."),
)

ERRORS: dict[str, ErrorCode] = {e.code: e for e in _CATALOGUE}


def error(code: str) -> ErrorCode:
    return ERRORS[code]

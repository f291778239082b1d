"""The OpenAPI 3.1 document served at `/openapi.json`.

It is built from what the edge enforces, so the two cannot drift: statuses, their metadata schemas
and the timeout bounds come from the loaded policy; field limits from `services.protocol`; error
bodies and codes from the catalogue (`schemas.errors`), each response listing only the codes that
operation can answer with. What OpenAPI cannot say is written next to where it applies.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from schemas.errors import ERRORS
from services.instants import MAX_EPOCH_MS
from services.policy import Policy, StateSpec
from services.protocol import (
    CHANNEL_ID,
    MAX_EXPIRY_S,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEYS,
    MAX_QUERY_BYTES,
    MAX_STATUS_EMOJI,
    MAX_STATUS_TEXT,
    MAX_USER_ID_CHARS,
    MAX_USER_IDS,
    UPDATE_FIELDS,
    Limits,
)
from services.rest import MAX_PAGE
from services.service_acts import MAX_REASON_CHARS
from services.timeline_reader import DAY_MS, MAX_WINDOW_MS

Schema = dict[str, Any]

_TIME = {"type": "integer", "description": "UTC epoch milliseconds"}
_ISO = {"type": "string", "format": "date-time", "description": "the same instant, ISO 8601 UTC"}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_STRINGS = {"type": "array", "items": {"type": "string"}}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_values() -> dict[str, Schema]:
    """`JsonN`: any JSON value nesting at most N levels of objects and arrays (metadata depth rule)."""
    schemas: dict[str, Schema] = {"Json0": {"type": ["string", "number", "boolean", "null"]}}
    for depth in range(1, MAX_METADATA_DEPTH):
        inner = _ref(f"Json{depth - 1}")
        schemas[f"Json{depth}"] = {"anyOf": [
            _ref("Json0"),
            {"type": "object", "additionalProperties": inner},
            {"type": "array", "items": inner},
        ]}
    return schemas


def _metadata(max_bytes: int) -> Schema:
    return {
        "type": "object",
        "maxProperties": MAX_METADATA_KEYS,
        "additionalProperties": _ref(f"Json{MAX_METADATA_DEPTH - 1}"),
        # JSON Schema has no keyword for a size in bytes: that limit is only said here, and answered 413.
        "description": f"at most {MAX_METADATA_KEYS} keys and {MAX_METADATA_DEPTH} levels of nesting, and at "
                       f"most {max_bytes} bytes encoded (413 request.too_large)",
    }


def _status_rule(spec: StateSpec) -> Schema:
    """What `status_metadata` must be when `status` is this state."""
    if spec.metadata_schema is None:
        then: Schema = {"properties": {"status_metadata": {"maxProperties": 0}}}
    else:
        then = {"properties": {"status_metadata": spec.metadata_schema}}
        if not jsonschema.Draft202012Validator(spec.metadata_schema).is_valid({}):
            then["required"] = ["status_metadata"]  # the edge validates a missing one as {}
    return {"if": {"properties": {"status": {"const": spec.name}}, "required": ["status"]}, "then": then}


def _update(policy: Policy) -> Schema:
    low, high = policy.user_timeout_bounds_s
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "enum": sorted(policy.states),
                       "description": "a built-in state or one from the policy file"},
            "status_metadata": {**_ref("Metadata"),
                                "description": "only with `status`; must fit that state's metadata schema"},
            "status_text": {"type": "string", "maxLength": MAX_STATUS_TEXT, "description": "empty string clears"},
            "status_emoji": {"type": "string", "maxLength": MAX_STATUS_EMOJI, "description": "empty string clears"},
            "expires_in_s": {"type": "number", "minimum": 1, "maximum": MAX_EXPIRY_S,
                             "description": "status and text revert to online after this"},
            "metadata": {**_ref("Metadata"), "description": "replaces the user's metadata"},
            "timeout_s": {"type": "number", "minimum": low, "maximum": high,
                          "description": "presence timeout of the user's open connections"},
            # Only the token's `sub` is accepted (403 presence.forbidden_user); a schema cannot name it.
            "user_id": {"type": "string", "description": "optional; must equal the token's `sub`"},
        },
        "anyOf": [{"required": [name]} for name in sorted(UPDATE_FIELDS)],
        "dependentRequired": {"status_metadata": ["status"]},
        "allOf": [_status_rule(spec) for spec in policy.states.values()],
    }


def _schemas(limits: Limits) -> dict[str, Schema]:
    policy = limits.policy
    shown = sorted(name for name, spec in policy.states.items() if spec.counts_as_online)
    return {
        **_json_values(),
        "Metadata": _metadata(limits.max_metadata_bytes),
        "Member": {
            "type": "object",
            "additionalProperties": False,
            "required": ["user_id", "status", "status_text", "status_emoji", "connections", "devices", "joined_at",
                         "joined_at_iso", "last_seen", "last_seen_iso"],
            "properties": {
                "user_id": {"type": "string"},
                "status": {"type": "string", "enum": shown, "description": "the chosen status, or away when idle"},
                "status_text": _TEXT_OR_NULL,
                "status_emoji": _TEXT_OR_NULL,
                "connections": {"type": "integer", "minimum": 1,
                                "description": "the user's connections joined to the channel"},
                "devices": _STRINGS,
                "joined_at": _TIME,
                "joined_at_iso": _ISO,
                "last_seen": _TIME,
                "last_seen_iso": _ISO,
                "metadata": {"type": "object", "description": "absent with include_metadata=false"},
                "status_metadata": {"type": "object", "description": "absent with include_metadata=false"},
            },
        },
        "UserPresence": {
            "type": "object",
            "additionalProperties": False,
            "required": ["user_id", "status", "active", "last_seen", "last_seen_iso", "connections", "devices",
                         "status_text", "status_emoji", "status_metadata", "status_expires_at",
                         "status_expires_at_iso", "metadata", "channels"],
            "properties": {
                "user_id": {"type": "string"},
                "status": {"type": "string", "enum": sorted({*shown, "offline"}),
                           "description": "offline while not connected or invisible"},
                "active": {"type": "boolean", "description": "connected and shown online"},
                "last_seen": _TIME,
                "last_seen_iso": _ISO,
                "connections": {"type": "integer", "minimum": 0},
                "devices": _STRINGS,
                "status_text": _TEXT_OR_NULL,
                "status_emoji": _TEXT_OR_NULL,
                "status_metadata": {"type": "object"},
                "status_expires_at": {"type": ["integer", "null"]},
                "status_expires_at_iso": {"type": ["string", "null"], "format": "date-time"},
                "metadata": {"type": "object"},
                "channels": {**_STRINGS, "description": "the channels the user is present in that the reader's "
                                                        "token allows, sorted"},
            },
        },
        "PresenceQuery": {
            "type": "object",
            "additionalProperties": False,
            "required": ["user_ids"],
            "properties": {"user_ids": {"type": "array", "minItems": 1, "maxItems": MAX_USER_IDS, "uniqueItems": True,
                                        "items": {"type": "string", "minLength": 1, "maxLength": MAX_USER_ID_CHARS}}},
            "description": f"at most {MAX_QUERY_BYTES} bytes (413 request.too_large)",
        },
        "PresenceQueryResult": {
            "type": "object",
            "additionalProperties": False,
            "required": ["users", "not_found"],
            "properties": {
                "users": {"type": "array", "items": _ref("UserPresence"), "description": "in the order asked"},
                "not_found": {**_STRINGS, "description": "ids unknown or not readable by the caller, alike"},
            },
        },
        "ChannelsList": {
            "type": "object",
            "additionalProperties": False,
            "required": ["channels", "next_cursor"],
            "properties": {
                "channels": {"type": "array", "description": "channels with members, by channel id", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["channel", "occupancy", "seq", "typing"],
                    "properties": {"channel": {"type": "string"}, "occupancy": {"type": "integer", "minimum": 1},
                                   "seq": {"type": "integer", "minimum": 0}, "typing": _STRINGS},
                }},
                "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"},
            },
        },
        "ChannelPresence": {
            "type": "object",
            "additionalProperties": False,
            "required": ["channel", "seq", "occupancy", "typing"],
            "properties": {
                "channel": {"type": "string"},
                "seq": {"type": "integer", "minimum": 0,
                        "description": "sequence number of this view; diffs follow with seq + 1"},
                "occupancy": {"type": "integer", "minimum": 0},
                "typing": {**_STRINGS, "description": "user ids typing now"},
                "members": {"type": "array", "items": _ref("Member"),
                            "description": "one page, sorted by user id; absent with count_only=true"},
                "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"},
                "at": {"type": "integer", "description": "with `?at=`: the instant answered, epoch milliseconds"},
                "at_iso": _ISO,
                "position": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["partition", "offset", "from_snapshot"],
                    "description": "with `?at=`: the answer folds this partition of presence.channel-changes "
                                   "from `from_snapshot` (null: the log's start) to below `offset`",
                    "properties": {"partition": {"type": "integer", "minimum": 0},
                                   "offset": {"type": "integer", "minimum": 0},
                                   "from_snapshot": {"type": ["integer", "null"], "minimum": 0}},
                },
            },
        },
        **_timeline_schemas(),
        "PresenceUpdate": _update(policy),
        "PresenceUpdateAccepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["event_id", "user_id", "status", "accepted_at", "accepted_at_iso"],
            "properties": {
                "event_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                "user_id": {"type": "string"},
                "status": {"type": ["string", "null"], "enum": [*sorted(policy.states), None]},
                "accepted_at": _TIME,
                "accepted_at_iso": _ISO,
                "presence": {**_ref("UserPresence"), "description": "with wait=true"},
            },
        },
        "ForcedOfflineAccepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["event_id", "user_id", "service", "reason", "forced_offline_at", "forced_offline_at_iso"],
            "properties": {
                "event_id": {"type": "string", "description": "the `user.forced_offline` event's id"},
                "user_id": {"type": "string"},
                "service": {"type": "string", "description": "the service key's name, as the event names it"},
                "reason": {"type": ["string", "null"]},
                "forced_offline_at": {**_TIME, "description": "UTC epoch milliseconds: the user's last seen"},
                "forced_offline_at_iso": _ISO,
            },
        },
        "ErasureAccepted": {
            "type": "object",
            "additionalProperties": False,
            "required": ["event_id", "user_id", "erased_at", "erased_at_iso"],
            "properties": {
                "event_id": {"type": "string", "pattern": "^[0-9a-f]{32}$",
                             "description": "the `user.erased` event's id"},
                "user_id": {"type": "string"},
                "erased_at": {**_TIME, "description": "UTC epoch milliseconds: history up to here is erased"},
                "erased_at_iso": _ISO,
            },
        },
        "Error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["code", "message", "retriable"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(ERRORS)},
                        "message": {"type": "string"},
                        "retriable": {"type": "boolean"},
                    },
                }
            },
        },
    }


def _timeline_schemas() -> dict[str, Schema]:
    end = {"type": ["integer", "null"], "description": "UTC epoch milliseconds; null while it lasts"}
    end_iso = {"type": ["string", "null"], "format": "date-time"}
    clipped = {"type": "boolean", "description": "not wholly inside the window: true start and end are given"}
    return {
        "Session": {
            "type": "object",
            "additionalProperties": False,
            "required": ["connection_id", "edge_id", "device", "channel", "start", "start_iso", "end", "end_iso",
                         "end_reason", "clipped"],
            "properties": {
                "connection_id": {"type": "string"},
                "edge_id": {"type": "string"},
                "device": _TEXT_OR_NULL,
                "channel": {"type": ["string", "null"], "description": "null: the connection's whole life"},
                "start": _TIME,
                "start_iso": _ISO,
                "end": end,
                "end_iso": end_iso,
                "end_reason": {"enum": ["leave", "timeout", "edge_failure", "forgotten", None]},
                "clipped": clipped,
            },
        },
        "StatusInterval": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "status_text", "status_emoji", "start", "start_iso", "end", "end_iso", "cause",
                         "clipped"],
            "properties": {
                "status": {"type": "string", "description": "as others saw it: offline, away while idle, or the "
                                                            "chosen status"},
                "status_text": _TEXT_OR_NULL,
                "status_emoji": _TEXT_OR_NULL,
                "start": _TIME,
                "start_iso": _ISO,
                "end": end,
                "end_iso": end_iso,
                "cause": {"enum": ["connect", "disconnect", "user", "rest", "idle", "expiry", "activity", "forgotten",
                                   "log_start"]},
                "clipped": clipped,
            },
        },
        "Timeline": {
            "type": "object",
            "additionalProperties": False,
            "required": ["user_id", "from", "from_iso", "to", "to_iso", "sessions", "statuses", "position"],
            "properties": {
                "user_id": {"type": "string"},
                "from": _TIME,
                "from_iso": _ISO,
                "to": _TIME,
                "to_iso": _ISO,
                "sessions": {"type": "array", "items": _ref("Session")},
                "statuses": {"type": "array", "items": _ref("StatusInterval")},
                "position": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["partition", "offset"],
                    "description": "the answer reflects every record of this partition of presence.events below "
                                   "this offset",
                    "properties": {"partition": {"type": "integer", "minimum": 0},
                                   "offset": {"type": "integer", "minimum": 0}},
                },
            },
        },
    }


def _instant(name: str, default: str) -> Schema:
    return {"name": name, "in": "query", "description": f"epoch milliseconds or ISO 8601 with a zone; {default}",
            "schema": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MS},
                                 {"type": "string", "format": "date-time"}]}}


_ERROR_HEADERS = {
    426: {"Upgrade": {"required": True, "schema": {"type": "string", "enum": ["websocket"]}}},
    503: {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 0}}},
}


def _errors(*codes: str) -> dict[str, Any]:
    """The error responses of an operation that may fail with `codes` (and, like any, server.internal)."""
    by_status: dict[int, list[str]] = {}
    for code in (*codes, "server.internal"):
        by_status.setdefault(ERRORS[code].http_status, []).append(code)
    out: dict[str, Any] = {}
    for status, group in sorted(by_status.items()):
        response: Schema = {
            "description": "error codes: " + ", ".join(group),
            "content": {"application/json": {"schema": {"allOf": [
                _ref("Error"),
                {"properties": {"error": {"properties": {"code": {"enum": group}}}}},
            ]}}},
        }
        if status in _ERROR_HEADERS:
            response["headers"] = _ERROR_HEADERS[status]
        out[str(status)] = response
    return out


def _json(schema: Schema | str, description: str) -> dict[str, Any]:
    body = _ref(schema) if isinstance(schema, str) else schema
    return {"description": description, "content": {"application/json": {"schema": body}}}


def _flag(name: str, description: str) -> Schema:
    # On the wire: true, false, 1 or 0 (services.rest._flag).
    schema = {"anyOf": [{"type": "boolean"}, {"type": "integer", "enum": [0, 1]}]}
    return {"name": name, "in": "query", "schema": schema, "description": description}


_NO_TOKEN: list[dict[str, list[str]]] = []  # the `security` of operations that take no token
_AUTH_ERRORS = ("auth.missing_token", "auth.invalid_token")
_SERVICE_KEY: list[dict[str, list[str]]] = [{"serviceKey": []}]  # the service acts: a service key only


def _paths(policy: Policy) -> dict[str, Any]:
    return {
        "/realtime/channels/{channel}/presence": {"get": {
            "summary": "Who is present in a channel",
            "parameters": [
                {"name": "channel", "in": "path", "required": True, "example": "lobby",
                 "schema": {"type": "string", "pattern": f"^{CHANNEL_ID.pattern}$"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "the `next_cursor` of the previous page (the last user id it held)"},
                _flag("count_only", "answer without `members` and `next_cursor`"),
                _flag("include_metadata", "false leaves `metadata` and `status_metadata` out of each member"),
                {"name": "status", "in": "query", "schema": {"type": "string"},
                 "description": "only members whose status is exactly this; one of "
                                + ", ".join(sorted(n for n, s in policy.states.items() if s.counts_as_online))},
                _instant("at", "the channel as it was at this instant, read from the log (docs/history.md); "
                               "absent: now"),
            ],
            "responses": {
                "200": _json("ChannelPresence", "the channel's current view, or its view at `at`"),
                # route.not_found: a channel id that is empty or holds `/` misses the route.
                **_errors(*_AUTH_ERRORS, "channel.invalid_id", "request.invalid", "auth.channel_forbidden",
                          "route.not_found", "service.not_ready", "service.broker_unavailable"),
            },
        }},
        "/realtime/users/{user_id}/presence": {"get": {
            "summary": "A user's status, last seen and devices",
            "parameters": [{"name": "user_id", "in": "path", "required": True, "example": "alice",
                            "schema": {"type": "string", "minLength": 1}}],
            "responses": {
                "200": _json("UserPresence", "the user's current view"),
                # Also for a user the caller may not read (docs/api.md#who-may-read-whom).
                **_errors(*_AUTH_ERRORS, "user.not_found", "route.not_found", "service.not_ready"),
            },
        }, "delete": {
            "summary": "Erase the caller: its presence now, and its history in every answer (docs/history.md)",
            "description": "Written to the event log, then answered once this edge no longer shows the user "
                           "(200), or after the write timeout if the processor has not applied it yet (202: it "
                           "will). Then the user has left every channel, its sockets are closed, `GET` answers "
                           "404 and history reads omit the user up to `erased_at`. Only the token's `sub` may be "
                           "erased (403 presence.forbidden_user).",
            "parameters": [{"name": "user_id", "in": "path", "required": True, "example": "alice",
                            "schema": {"type": "string", "minLength": 1}, "description": "the token's `sub`"}],
            "responses": {
                "200": _json("ErasureAccepted", "applied: this edge no longer shows the user"),
                "202": _json("ErasureAccepted", "written to the log, not applied within the write timeout"),
                **_errors(*_AUTH_ERRORS, "auth.user_only", "presence.forbidden_user", "route.not_found",
                          "service.broker_unavailable"),
            },
        }, "post": {
            "summary": "A service sets a user's status and/or metadata on its behalf (service keys only)",
            "security": _SERVICE_KEY,
            "description": "As `POST /realtime/presence/update` for the user in the path; the event in the log "
                           "names the service. An end-user token is refused (403 auth.service_only).",
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "example": "alice",
                 "schema": {"type": "string", "minLength": 1}},
                _flag("wait", "answer once the update is applied (read your writes)"),
                {"name": "Idempotency-Key", "in": "header",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                 "description": "repeating a key repeats the event id, which the processor applies once"},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("PresenceUpdate"), "example": {"status": "busy", "status_text": "On a call"},
            }}},
            "responses": {
                "200": _json("PresenceUpdateAccepted", "written to the log"),
                **_errors(*_AUTH_ERRORS, "auth.service_only", "request.malformed_json", "request.invalid",
                          "presence.unknown_status", "presence.invalid_status_metadata",
                          "presence.timeout_out_of_bounds", "presence.forbidden_user", "request.too_large",
                          "route.not_found", "service.broker_unavailable", "service.processor_lagging"),
            },
        }},
        "/realtime/users/{user_id}/presence/offline": {"post": {
            "summary": "A service forces a user offline: every connection ends, every socket is closed (4409)",
            "security": _SERVICE_KEY,
            "description": "Writes `user.forced_offline` naming the service; once the processor applied it the "
                           "user is offline with `last_seen` at `forced_offline_at`, has left every channel, "
                           "and every edge closes the user's sockets with `connection.forced_offline`. Service "
                           "keys only (403 auth.service_only).",
            "parameters": [{"name": "user_id", "in": "path", "required": True, "example": "alice",
                            "schema": {"type": "string", "minLength": 1}}],
            "requestBody": {"required": False, "content": {"application/json": {
                "schema": {"type": "object", "additionalProperties": False, "properties": {
                    "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON_CHARS}}},
                "example": {"reason": "account suspended"},
            }}},
            "responses": {
                "200": _json("ForcedOfflineAccepted", "written to the log"),
                **_errors(*_AUTH_ERRORS, "auth.service_only", "request.malformed_json", "request.invalid",
                          "request.too_large", "route.not_found", "service.broker_unavailable"),
            },
        }},
        "/realtime/users/{user_id}/presence/timeline": {"get": {
            "summary": "The caller's sessions and status intervals in a window, folded from the log",
            "description": f"`from` must be before `to`, at most {MAX_WINDOW_MS // DAY_MS} days before it "
                           "(400 request.invalid otherwise).",
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "example": "alice",
                 "schema": {"type": "string", "minLength": 1}, "description": "the token's `sub`"},
                _instant("from", "default: a day before `to`"),
                _instant("to", "default: now"),
            ],
            "responses": {
                "200": _json("Timeline", "sessions and intervals overlapping [from, to)"),
                **_errors(*_AUTH_ERRORS, "history.forbidden_user", "request.invalid", "user.not_found",
                          "route.not_found", "service.broker_unavailable"),
            },
        }},
        "/realtime/presence/query": {"post": {
            "summary": "Bulk presence: the views of up to 500 users the caller may read",
            "description": "Users unknown and users the caller may not read are listed alike in `not_found` "
                           "(docs/api.md#who-may-read-whom).",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("PresenceQuery"), "example": {"user_ids": ["alice", "bob"]},
            }}},
            "responses": {
                "200": _json("PresenceQueryResult", "the readable users' views and the other ids"),
                **_errors(*_AUTH_ERRORS, "request.malformed_json", "request.invalid", "request.too_large",
                          "service.not_ready"),
            },
        }},
        "/realtime/channels": {"get": {
            "summary": "The channels with members that the caller's token allows (a service: all)",
            "parameters": [
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"},
                 "description": "the `next_cursor` of the previous page (the last channel id it held)"},
            ],
            "responses": {
                "200": _json("ChannelsList", "one page, by channel id"),
                **_errors(*_AUTH_ERRORS, "request.invalid", "service.not_ready"),
            },
        }},
        "/realtime/presence/update": {"post": {
            "summary": "Set the caller's status and/or metadata; answered after Kafka acknowledged it",
            "parameters": [
                _flag("wait", "answer once the update is applied (read your writes)"),
                {"name": "Idempotency-Key", "in": "header",
                 "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                 "description": "repeating a key repeats the event id, which the processor applies once"},
            ],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("PresenceUpdate"),
                "example": {"status": "away", "status_text": "Lunch", "expires_in_s": 3600},
            }}},
            "responses": {
                "200": _json("PresenceUpdateAccepted", "written to the log"),
                **_errors(*_AUTH_ERRORS, "request.malformed_json", "request.invalid", "presence.unknown_status",
                          "presence.invalid_status_metadata", "presence.timeout_out_of_bounds",
                          "presence.forbidden_user", "auth.user_only", "request.too_large",
                          "service.broker_unavailable", "service.processor_lagging"),
            },
        }},
        # OpenAPI describes HTTP exchanges, not WebSockets. What a plain HTTP GET gets here is 426;
        # the handshake (`Upgrade: websocket`, with `token`, `device` and `metadata` in the query) and
        # its refusals are in docs/api.md. Its query parameters are left out on purpose: a plain GET
        # ignores them, so declaring them would promise validation that only the upgrade does.
        "/realtime/ws": {"get": {
            "summary": "WebSocket endpoint: a WebSocket handshake opens the socket (see docs/api.md)",
            "security": _NO_TOKEN,
            "responses": {
                "101": {"description": "switching protocols: a valid handshake opened the socket"},
                **_errors("route.upgrade_required"),
            },
        }},
        "/healthz": {"get": {
            "summary": "Liveness",
            "security": _NO_TOKEN,
            "responses": {
                "200": _json({"type": "object", "additionalProperties": False, "required": ["status"],
                              "properties": {"status": {"const": "ok"}}}, "the process serves HTTP"),
                **_errors(),
            },
        }},
        "/readyz": {"get": {
            "summary": "Ready once the read model caught up with presence.channel-changes and presence.users",
            "security": _NO_TOKEN,
            "responses": {
                "200": _json({"type": "object", "additionalProperties": False, "required": ["status"],
                              "properties": {"status": {"const": "ready"}}}, "ready"),
                **_errors("service.not_ready"),
            },
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics",
            "description": "Not a user's JWT: with PRESENCE_METRICS_TOKEN set, `Authorization: Bearer <that token>`; "
                           "open in dev mode otherwise. Not served here when PRESENCE_ADMIN_PORT serves it, nor "
                           "in production without a token (docs/operations.md).",
            "security": _NO_TOKEN,
            "responses": {
                "200": {"description": "Prometheus text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_errors("auth.missing_token", "auth.invalid_token"),
            },
        }},
        "/openapi.json": {"get": {
            "summary": "This document",
            "security": _NO_TOKEN,
            "responses": {
                "200": _json({"type": "object", "required": ["openapi", "info", "paths"]}, "OpenAPI 3.1"),
                **_errors(),
            },
        }},
        "/realtime/client.js": _browser_file("The JavaScript client, an ES module (docs/api.md#javascript-client)",
                                             ("text/javascript",)),
        "/dashboard": _browser_file("The live dashboard (docs/api.md#dashboard)", ("text/html",)),
        "/dashboard/{name}": _browser_file("The dashboard's script and style", ("text/javascript", "text/css"), [
            {"name": "name", "in": "path", "required": True, "schema": {"enum": ["dashboard.js", "dashboard.css"]}},
        ]),
    }


def _browser_file(summary: str, media_types: tuple[str, ...], parameters: list[Schema] | None = None) -> dict[str, Any]:
    """A file the edge serves to browsers (services/web.py): revalidated on each load by its ETag."""
    return {"get": {
        "summary": summary,
        "security": _NO_TOKEN,
        "parameters": [*(parameters or []), {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the file", "headers": {"ETag": {"schema": {"type": "string"}}},
                    "content": {media_type: {"schema": {"type": "string"}} for media_type in media_types}},
            "304": {"description": "unchanged since the ETag given in If-None-Match"},
            **_errors(*(["route.not_found"] if parameters else [])),
        },
    }}


def openapi_document(limits: Limits) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Presence service", "version": "0.1.0"},
        "components": {
            "schemas": _schemas(limits),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "token": {"type": "apiKey", "in": "query", "name": "token",
                          "description": "the same JWT; REST reads the Authorization header first"},
                "serviceKey": {"type": "http", "scheme": "bearer", "bearerFormat": "psk.<name>.<secret>",
                               "description": "a backend's service key (docs/api.md#service-keys)"},
            },
        },
        "security": [{"bearer": []}, {"token": []}],
        "paths": _paths(limits.policy),
    }

"""The OpenAPI 3.1 document served at `/openapi.json`. Error codes come from the catalogue."""

from __future__ import annotations

from typing import Any

from schemas.errors import ERRORS

_TIME = {"type": "integer", "description": "UTC epoch milliseconds"}
_ISO = {"type": "string", "format": "date-time", "description": "The same instant, ISO 8601 UTC"}

_SCHEMAS: dict[str, Any] = {
    "Member": {
        "type": "object",
        "required": ["user_id", "status", "status_text", "status_emoji", "connections", "devices", "joined_at",
                     "joined_at_iso", "last_seen", "last_seen_iso"],
        "properties": {
            "user_id": {"type": "string"},
            "status": {"type": "string", "description": "online, away, busy, dnd or a custom state"},
            "status_text": {"type": ["string", "null"]},
            "status_emoji": {"type": ["string", "null"]},
            "connections": {"type": "integer", "description": "the user's connections joined to the channel"},
            "devices": {"type": "array", "items": {"type": "string"}},
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
        "required": ["user_id", "status", "active", "last_seen", "last_seen_iso", "connections", "devices",
                     "status_text", "status_emoji", "status_metadata", "status_expires_at",
                     "status_expires_at_iso", "metadata"],
        "properties": {
            "user_id": {"type": "string"},
            "status": {"type": "string", "description": "offline while not connected or invisible"},
            "active": {"type": "boolean", "description": "currently connected and shown online"},
            "last_seen": _TIME,
            "last_seen_iso": _ISO,
            "connections": {"type": "integer"},
            "devices": {"type": "array", "items": {"type": "string"}},
            "status_text": {"type": ["string", "null"]},
            "status_emoji": {"type": ["string", "null"]},
            "status_metadata": {"type": "object"},
            "status_expires_at": {"type": ["integer", "null"]},
            "status_expires_at_iso": {"type": ["string", "null"], "format": "date-time"},
            "metadata": {"type": "object"},
        },
    },
    "ChannelPresence": {
        "type": "object",
        "required": ["channel", "seq", "occupancy", "typing"],
        "properties": {
            "channel": {"type": "string"},
            "seq": {"type": "integer", "description": "sequence number of this view; diffs follow with seq + 1"},
            "occupancy": {"type": "integer"},
            "typing": {"type": "array", "items": {"type": "string"}, "description": "user ids typing now"},
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"},
                        "description": "one page, sorted by user id; absent with count_only=true"},
            "next_cursor": {"type": ["string", "null"], "description": "pass as `cursor` for the next page"},
        },
    },
    "PresenceUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string", "description": "a built-in or configured state"},
            "status_metadata": {"type": "object", "description": "validated against the state's schema"},
            "status_text": {"type": "string", "maxLength": 100, "description": "empty string clears"},
            "status_emoji": {"type": "string", "maxLength": 16, "description": "empty string clears"},
            "expires_in_s": {"type": "number", "description": "status and text revert to online after this"},
            "metadata": {"type": "object", "description": "replaces the user's metadata; size and depth limited"},
            "timeout_s": {"type": "number", "description": "presence timeout for this user, within server bounds"},
            "user_id": {"type": "string", "description": "optional; must equal the token's `sub`"},
        },
    },
    "PresenceUpdateAccepted": {
        "type": "object",
        "required": ["event_id", "user_id", "status", "accepted_at", "accepted_at_iso"],
        "properties": {
            "event_id": {"type": "string"},
            "user_id": {"type": "string"},
            "status": {"type": ["string", "null"]},
            "accepted_at": _TIME,
            "accepted_at_iso": _ISO,
            "presence": {"$ref": "#/components/schemas/UserPresence", "description": "with wait=true"},
        },
    },
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
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


def _errors(*statuses: int) -> dict[str, Any]:
    out = {}
    for status in statuses:
        codes = sorted(e.code for e in ERRORS.values() if e.http_status == status)
        out[str(status)] = {
            "description": "error codes: " + ", ".join(codes),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Presence service", "version": "0.1.0"},
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/realtime/channels/{channel}/presence": {
                "get": {
                    "summary": "Who is present in a channel",
                    "parameters": [
                        {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                        {"name": "count_only", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "include_metadata", "in": "query", "schema": {"type": "boolean"}},
                        {"name": "status", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {"200": _json("ChannelPresence", "the channel's current view"),
                                  **_errors(400, 401, 403, 503)},
                }
            },
            "/realtime/users/{user_id}/presence": {
                "get": {
                    "summary": "A user's status, last seen and devices",
                    "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json("UserPresence", "the user's current view"), **_errors(401, 404, 503)},
                }
            },
            "/realtime/presence/update": {
                "post": {
                    "summary": "Set the caller's status and/or metadata; answered after Kafka acknowledged it",
                    "parameters": [
                        {"name": "wait", "in": "query", "schema": {"type": "boolean"},
                         "description": "answer once the update is applied (read your writes)"},
                        {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 200},
                         "description": "repeating a key repeats the event id, which the processor applies once"},
                    ],
                    "requestBody": {"required": True, "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/PresenceUpdate"}}}},
                    "responses": {"200": _json("PresenceUpdateAccepted", "written to the log"),
                                  **_errors(400, 401, 403, 413, 503)},
                }
            },
            "/realtime/ws": {
                "get": {
                    "summary": "WebSocket endpoint (see docs/api.md for the frames); token in `token` query",
                    "parameters": [{"name": "token", "in": "query", "required": True, "schema": {"type": "string"}}],
                    "responses": {"101": {"description": "switching protocols"}, **_errors(401, 403, 426, 429)},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {
                "get": {
                    "summary": "Ready once the read model caught up with presence.channels",
                    "security": [],
                    "responses": {"200": {"description": "ready"}, **_errors(503)},
                }
            },
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                                 "responses": {"200": {"description": "text exposition format"}}}},
        },
    }

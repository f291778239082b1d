"""The OpenAPI 3.1 document served at `/openapi.json`. Error codes come from the catalogue."""

from __future__ import annotations

from typing import Any

from schemas.errors import ERRORS

_TIME = {"type": "integer", "description": "UTC epoch milliseconds"}
_ISO = {"type": "string", "format": "date-time", "description": "The same instant, ISO 8601 UTC"}

_SCHEMAS: dict[str, Any] = {
    "Member": {
        "type": "object",
        "required": ["user_id", "status", "connections", "joined_at", "joined_at_iso", "last_seen",
                     "last_seen_iso", "metadata"],
        "properties": {
            "user_id": {"type": "string"},
            "status": {"type": "string", "description": "online, away, busy, dnd, ..."},
            "connections": {"type": "integer", "description": "the user's connections joined to the channel"},
            "joined_at": _TIME,
            "joined_at_iso": _ISO,
            "last_seen": _TIME,
            "last_seen_iso": _ISO,
            "metadata": {"type": "object"},
        },
    },
    "ChannelPresence": {
        "type": "object",
        "required": ["channel", "seq", "occupancy", "members"],
        "properties": {
            "channel": {"type": "string"},
            "seq": {"type": "integer", "description": "sequence number of this view; diffs follow with seq + 1"},
            "occupancy": {"type": "integer"},
            "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
        },
    },
    "PresenceUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"type": "string"},
            "metadata": {"type": "object", "description": "replaces the user's metadata; size and depth limited"},
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
                    "parameters": [{"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": _json("ChannelPresence", "the channel's current view"),
                                  **_errors(400, 401, 403, 503)},
                }
            },
            "/realtime/presence/update": {
                "post": {
                    "summary": "Set the caller's status and/or metadata; answered after Kafka acknowledged it",
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
                    "responses": {"101": {"description": "switching protocols"}, **_errors(401)},
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

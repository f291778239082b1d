"""The edge's logging, handed to uvicorn as its logging config: uvicorn's text lines (the default) or,
with `PRESENCE_LOG_FORMAT=json`, one JSON object per line carrying the request's id. Either way every
handler redacts tokens, which clients pass in the WebSocket URL and uvicorn logs (services/log_redaction.py).
"""

from __future__ import annotations

import copy
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from uvicorn.config import LOGGING_CONFIG

from services.log_redaction import RedactTokens
from services.request_ids import RequestIdFilter


def json_formatter() -> JsonFormatter:
    """`timestamp`, `level`, `logger`, `message`, and `request_id` during a request."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp=True,
        # uvicorn adds the message with terminal colours as an extra; the plain one is enough.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def log_config(log_format: str, level: str) -> dict[str, Any]:
    if log_format == "json":
        return {
            "version": 1,
            "disable_existing_loggers": False,
            "filters": {"redact": {"()": RedactTokens}, "request_id": {"()": RequestIdFilter}},
            "formatters": {"json": {"()": json_formatter}},
            "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                    "formatter": "json", "filters": ["redact", "request_id"]}},
            "root": {"handlers": ["stdout"], "level": level.upper()},
        }
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactTokens}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    return config

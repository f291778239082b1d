"""The worker's logging with `PRESENCE_LOG_FORMAT=json`: one JSON object per line, with the fields of the
edge's (services/logs.py) but no request id, as the worker serves no requests."""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter


def json_formatter() -> JsonFormatter:
    """`timestamp`, `level`, `logger`, `message`."""
    return JsonFormatter("%(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level", "name": "logger"},
                         timestamp=True)


def json_log_config(level: str) -> dict[str, Any]:
    """For Faust's `logging_config`, which replaces the worker's own (coloured text on stdout)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": json_formatter}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
        "root": {"handlers": ["stdout"], "level": level.upper()},
    }

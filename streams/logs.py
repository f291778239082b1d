"""The worker's logging with `PRESENCE_LOG_FORMAT=json`: one JSON object per line, with the fields of the
edge's (services/logs.py) but no request id, as the worker serves no requests."""

from __future__ import annotations

from typing import Any

import faust
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


class SpinnerlessWorker(faust.Worker):
    """Faust's start-up spinner writes cursor escape codes to stdout even when stdout is no terminal (a log
    file, a container's log), so a JSON log would get lines that are not JSON. This worker has no spinner."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None

"""Keep tokens out of logs: clients pass their JWT in the WebSocket URL's query string, and
uvicorn logs that URL (`"WebSocket /realtime/ws?token=..." [accepted]`, and its access log every request
line) at info level. Every handler of the edge's logging has this filter (services/logs.py)."""

from __future__ import annotations

import logging
import re

_TOKEN = re.compile(r"((?:access_)?token=)[^&\s\"']+")


def redact(text: str) -> str:
    return _TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True

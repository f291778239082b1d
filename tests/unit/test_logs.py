"""The edge's and the worker's logging configs: JSON lines with request ids, tokens redacted."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from starlette.types import Message, Receive, Scope, Send

from services import logs as edge_logs
from services.log_redaction import RedactTokens
from services.request_ids import RequestIds
from streams import logs as worker_logs


@pytest.fixture
def restored_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_edge_json_lines_carry_the_request_id_and_no_token(
    restored_root: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.config.dictConfig(edge_logs.log_config("json", "info"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # As uvicorn logs an accepted WebSocket, with a colour variant of the message as an extra.
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000",
                                                "/realtime/ws?token=eyJ.secret.sig", extra={"color_message": "x"})

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    scope = {"type": "http", "headers": [(b"x-request-id", b"rid-1")]}
    await asyncio.create_task(RequestIds(app)(scope, receive, send))
    logging.getLogger("services.test").warning("outside a request")
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert inside["request_id"] == "rid-1"
    assert inside["message"] == '127.0.0.1:5000 - "WebSocket /realtime/ws?token=[redacted]" [accepted]'
    assert inside["level"] == "INFO" and inside["logger"] == "uvicorn.error" and "timestamp" in inside
    assert "color_message" not in inside
    assert "request_id" not in outside and outside["level"] == "WARNING"


def test_edge_text_lines_are_uvicorns_with_tokens_redacted() -> None:
    config = edge_logs.log_config("text", "info")
    assert config["filters"]["redact"]["()"] is RedactTokens
    assert {name: handler["filters"] for name, handler in config["handlers"].items()} == {
        "default": ["redact"], "access": ["redact"]}
    assert config["formatters"]["access"]["()"] == "uvicorn.logging.AccessFormatter"


def test_worker_json_lines_have_the_edge_fields() -> None:
    record = logging.LogRecord("streams.agents", logging.ERROR, __file__, 1, "dead letter from %s", ("x",), None)
    edge = json.loads(edge_logs.json_formatter().format(record))
    worker = json.loads(worker_logs.json_formatter().format(record))
    assert worker == edge
    assert worker["message"] == "dead letter from x" and worker["level"] == "ERROR"
    config = worker_logs.json_log_config("warn")
    assert config["root"] == {"handlers": ["stdout"], "level": "WARN"}

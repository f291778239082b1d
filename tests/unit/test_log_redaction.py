import logging

from services.log_redaction import RedactTokens, redact


def test_tokens_in_urls_are_redacted() -> None:
    assert redact("/realtime/ws?token=eyJ.abc.def&device=phone") == "/realtime/ws?token=[redacted]&device=phone"
    assert redact('"WebSocket /realtime/ws?access_token=eyJ.x.y" [accepted]') == (
        '"WebSocket /realtime/ws?access_token=[redacted]" [accepted]')
    assert redact("/realtime/channels/room/presence?limit=5") == "/realtime/channels/room/presence?limit=5"


def test_uvicorn_style_records_lose_the_token(caplog) -> None:  # type: ignore[no-untyped-def]
    logger = logging.getLogger("test.redaction")
    logger.addFilter(RedactTokens())
    with caplog.at_level(logging.INFO, logger="test.redaction"):
        logger.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", "/realtime/ws?token=eyJ.secret.sig")
    assert "eyJ.secret.sig" not in caplog.text
    assert "token=[redacted]" in caplog.text

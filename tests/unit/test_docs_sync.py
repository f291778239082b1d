"""Code, catalogue and docs stay in step: every error code and every setting is documented, and every
code the edge raises is in the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.errors import ERRORS

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_SOURCES = ["services/settings.py", "services/cli.py", "streams/settings.py", "streams/__main__.py"]


def _table_rows(doc: str) -> list[str]:
    return re.findall(r"^\| `([^`]+)`", (ROOT / "docs" / doc).read_text(), flags=re.MULTILINE)


def test_every_error_code_is_documented_once_and_nothing_else() -> None:
    rows = _table_rows("errors.md")
    assert sorted(rows) == sorted(ERRORS)


def test_every_code_the_edge_raises_is_in_the_catalogue() -> None:
    raised = set()
    for path in (ROOT / "services").glob("*.py"):
        raised |= set(re.findall(r'ApiError\(\s*"([a-z_.]+)"', path.read_text()))
    assert raised, "no ApiError found: the pattern no longer matches the code"
    assert raised <= ERRORS.keys()


def test_every_setting_the_code_reads_is_documented() -> None:
    read = set()
    for source in SETTINGS_SOURCES:
        read |= set(re.findall(r'"((?:PRESENCE|KAFKA)_[A-Z_]+)"', (ROOT / source).read_text()))
    assert "PRESENCE_JWT_SECRET" in read
    documented = set(_table_rows("configuration.md"))
    assert read - documented == set()

"""The guides do not lie: every ```python block in docs/guides/*.md runs as written against the stack.

Each block is a complete script. It reads `PRESENCE_URL` and `PRESENCE_JWT_SECRET` (and may read
`PRESENCE_WS_URL`), mints its own tokens, asserts what the guide claims, and must exit with 0.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.integration.stack import ROOT, SECRET, Stack

GUIDES = ROOT / "docs" / "guides"
EXPECTED_GUIDES = ("presence.md", "states-and-timeouts.md", "typing.md", "timelines.md", "history.md")
BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
BLOCK_TIMEOUT_S = 60


def python_blocks(path: Path) -> list[str]:
    return [match.group(1) for match in BLOCK.finditer(path.read_text())]


def _cases() -> list[object]:
    return [
        pytest.param(path.name, index, code, id=f"{path.stem}-{index}")
        for path in sorted(GUIDES.glob("*.md"))
        for index, code in enumerate(python_blocks(path))
    ]


def test_every_guide_has_examples() -> None:
    for name in EXPECTED_GUIDES:
        assert python_blocks(GUIDES / name), f"docs/guides/{name} has no ```python block"


@pytest.mark.parametrize(("guide", "index", "code"), _cases())
async def test_guide_example_runs(stack: Stack, tmp_path: Path, guide: str, index: int, code: str) -> None:
    script = tmp_path / f"{Path(guide).stem.replace('-', '_')}_{index}.py"
    script.write_text(code)  # a file, not `-c`, so a traceback shows the failing line
    env = {
        **os.environ,
        "PRESENCE_URL": stack.base_url,
        "PRESENCE_WS_URL": stack.ws_url,
        "PRESENCE_JWT_SECRET": SECRET,
        "PYTHONPATH": str(ROOT),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), BLOCK_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        stdout, stderr = await process.communicate()
        pytest.fail(f"docs/guides/{guide} block {index} ran over {BLOCK_TIMEOUT_S} s\n"
                    f"stdout:\n{stdout.decode()}\nstderr:\n{stderr.decode()}")
    assert process.returncode == 0, (
        f"docs/guides/{guide} block {index} exited with {process.returncode}\n"
        f"stdout:\n{stdout.decode()}\nstderr:\n{stderr.decode()}"
    )

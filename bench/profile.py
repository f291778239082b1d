"""Summaries of py-spy `--format raw` profiles (collapsed stacks: `frame;frame;... count`)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")

# Where a sample's time goes, judged by the innermost frame that matches (first rule wins per frame).
CATEGORIES = [
    ("waiting in epoll (idle)", ("selectors.py",)),
    ("logging", ("logging/",)),
    ("aiokafka (client, protocol, record batches)", ("aiokafka/",)),
    ("faust + mode (stream machinery, tables)", ("faust/", "mode/")),
    ("uvicorn / websockets / starlette", ("uvicorn/", "websockets/", "starlette/", "httptools/")),
    ("prometheus client", ("prometheus_client/",)),
    ("presence: schemas (codec)", ("schemas/",)),
    ("presence: streams (agents, cores)", ("streams/",)),
    ("presence: services (edge)", ("services/",)),
    ("asyncio (transports: socket writes, scheduling)", ("asyncio/",)),
    ("event loop run (uvloop native: socket I/O, callbacks)", ("asyncio/runners.py", "uvloop/")),
]
OURS = ("schemas/", "streams/", "services/")


def _parse(path: Path) -> list[tuple[list[str], int]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append((stack.split(";"), int(count)))
    return out


def _where(frame: str) -> tuple[str, str]:
    m = FRAME.match(frame)
    if not m:
        return frame, ""
    return m["func"], m["file"]


def _short(frame: str) -> str:
    func, file = _where(frame)
    parts = file.split("/")
    return f"{func} ({'/'.join(parts[-3:])})"


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    stacks = _parse(path)
    total = sum(c for _, c in stacks)
    if total == 0:
        return {"samples": 0, "markdown": "(no samples)"}
    leaf: Counter = Counter()
    category: Counter = Counter()
    inclusive: Counter = Counter()
    for frames, count in stacks:
        leaf[_short(frames[-1])] += count
        cat = "other"
        for frame in reversed(frames):
            file = _where(frame)[1]
            hit = next((name for name, needles in CATEGORIES if any(file.startswith(n) for n in needles)), None)
            if hit and hit.startswith("asyncio") and file == "asyncio/runners.py":
                hit = CATEGORIES[-1][0]
            if hit:
                cat = hit
                break
        category[cat] += count
        for name in {_short(f) for f in frames
                     if _where(f)[1].startswith(OURS) and _where(f)[0] not in ("<module>", "main", "_edge")}:
            inclusive[name] += count
    md = [f"{total:,} samples (py-spy, 200 Hz, all threads; time blocked in epoll still shows as `selectors.py`).", "",
          "| where the innermost known frame is | share |", "|---|---|"]
    md += [f"| {k} | {v / total:.0%} |" for k, v in category.most_common()]
    md += ["", "| presence function (inclusive) | share |", "|---|---|"]
    md += [f"| `{k}` | {v / total:.0%} |" for k, v in inclusive.most_common(top)]
    md += ["", "| innermost frame (self) | share |", "|---|---|"]
    md += [f"| `{k}` | {v / total:.1%} |" for k, v in leaf.most_common(top)]
    return {
        "samples": total,
        "categories": {k: v / total for k, v in category.most_common()},
        "inclusive": {k: v / total for k, v in inclusive.most_common(top)},
        "self": {k: v / total for k, v in leaf.most_common(top)},
        "markdown": "\n".join(md),
    }


if __name__ == "__main__":
    import sys

    for arg in sys.argv[1:]:
        print(f"## {arg}\n\n{summarize(Path(arg))['markdown']}\n")

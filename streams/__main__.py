"""`python -m streams`: run one processor worker (what `presence worker` execs)."""

from __future__ import annotations

import os
import sys

from streams import agents, sweeper  # noqa: F401  (registers the agents and the timer)
from streams.app import app
from streams.tuning import quiet_loggers


@app.task
async def _quiet() -> None:
    if os.environ.get("PRESENCE_LOG_LEVEL", "warn") == "warn":
        quiet_loggers()


if __name__ == "__main__":
    level = os.environ.get("PRESENCE_LOG_LEVEL", "warn")
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", level, *sys.argv[1:]]
    app.main()

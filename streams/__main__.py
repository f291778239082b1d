"""`python -m streams`: run one processor worker (what `presence worker` execs)."""

from __future__ import annotations

import sys

from streams import agents, sweeper  # noqa: F401  (registers the agents and the timer)
from streams.app import app
from streams.tuning import quiet_loggers


@app.task
async def _quiet() -> None:
    quiet_loggers()


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--without-web", "--loglevel", "warn", *sys.argv[1:]]
    app.main()

"""`python -m streams`: run one processor worker (what `presence worker` execs)."""

from __future__ import annotations

import os
import sys

from streams import agents, metrics, sweeper  # noqa: F401  (registers the agents and the timer)
from streams.app import app, settings
from streams.logs import SpinnerlessWorker, json_log_config
from streams.tuning import quiet_loggers

# PRESENCE_LOG_LEVEL is shared with the edge, which spells it "warning".
LEVEL = os.environ.get("PRESENCE_LOG_LEVEL", "warning").replace("warning", "warn")


@app.task
async def _quiet() -> None:
    if LEVEL == "warn":
        quiet_loggers()


if __name__ == "__main__":
    if problems := settings.unsafe():
        sys.exit("refusing to start with unsafe settings (set PRESENCE_DEV_MODE=true for development):\n  - "
                 + "\n  - ".join(problems))
    if settings.metrics_port:
        metrics.serve(settings.metrics_host, settings.metrics_port)
    quiet = []
    if settings.log_format == "json":
        app.conf.logging_config = json_log_config(LEVEL)
        app.conf.Worker = SpinnerlessWorker  # type: ignore[assignment]  # faust types it as a symbol or a class
        quiet = ["--quiet"]  # no banner on stdout: every line is a JSON object
    sys.argv = [sys.argv[0], *quiet, "worker", "--without-web", "--loglevel", LEVEL, *sys.argv[1:]]
    app.main()

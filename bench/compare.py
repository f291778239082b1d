"""`python -m bench.compare RUN_DIR...`: one markdown table across several runs (scaling, A/B).

Each RUN_DIR is a `bench/results/<run>/` folder written by `bench.run`; the rows are its stack
(workers, edges, extra env), its floor, steady, ramp, burst and churn figures, and CPU per process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.report import _f


def row(results: dict[str, Any]) -> list[str]:
    phases, stack = results["phases"], results["stack"]

    def latency(name: str, key: str = "latency") -> str:
        lat = phases.get(name, {}).get(key) or {}
        return f"{_f(lat.get('p50_ms'))} / {_f(lat.get('p99_ms'))}" if lat.get("n") else "-"

    steady = phases.get("steady", {})
    cpu = {name: u["cpu_pct"] for name, u in steady.get("usage", {}).items()}
    workers = sum(v for k, v in cpu.items() if k.startswith("worker"))
    edges = sum(v for k, v in cpu.items() if k.startswith("edge"))
    ramp = " ".join(f"{s['rate']:g}:{_f(s['p99_ms'], 0)}" for s in results.get("ramp", {}).get("steps", []))
    burst = phases.get("burst", {})
    env = " ".join(f"{k}={v}" for k, v in stack.get("extra_env", {}).items()) or "-"
    return [
        f"{stack['workers']}", f"{stack['edges']}", env, f"{results['sizes']['connections']:,}",
        f"{results['sizes']['rate']:g}", latency("floor: Kafka 2-hop"), latency("steady"),
        f"{steady.get('deliveries_received', 0):,}/{steady.get('deliveries_expected', 0):,}",
        ramp or "-", f"{_f(results.get('ramp', {}).get('max_rate_p99_le_50ms'), 0)}",
        latency("burst"), f"{_f(burst.get('window_s'))}", latency("churn"),
        " / ".join(_f(v, 0) for v in (workers, edges, cpu.get("broker"), cpu.get("(other processes on the machine)"))),
    ]


HEADER = ["workers", "edges", "extra env", "connections", "steady rate/s", "2-hop floor p50 / p99 ms",
          "steady p50 / p99 ms", "steady deliveries", "ramp rate:p99 ms", "max rate with p99 <= 50 ms",
          "burst p50 / p99 ms", "burst window s", "churn p50 / p99 ms",
          "steady CPU % workers / edges / broker / others"]


def main(paths: list[str]) -> None:
    lines = ["| run | " + " | ".join(HEADER) + " |", "|---" * (len(HEADER) + 1) + "|"]
    for path in paths:
        results = json.loads((Path(path) / "results.json").read_text())
        lines.append(f"| {Path(path).name} | " + " | ".join(row(results)) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])

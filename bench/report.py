"""Summaries of the phases: percentiles, JSON, markdown tables and plots (latency CDF, latency over time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.load import Phase

MiB = 1024 * 1024


def pct(values: Any) -> dict[str, float | int | None]:
    a = np.frombuffer(values, dtype=np.float64) if not isinstance(values, np.ndarray) else values
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    p = np.percentile(a, [50, 95, 99]) * 1000
    return {"n": int(a.size), "p50_ms": float(p[0]), "p95_ms": float(p[1]), "p99_ms": float(p[2]),
            "max_ms": float(a.max() * 1000), "mean_ms": float(a.mean() * 1000)}


def summarize(phase: Phase) -> dict[str, Any]:
    return {
        "name": phase.name,
        "offered_rate": phase.offered_rate,
        "achieved_rate": phase.notes.get("achieved_rate"),
        "send_window_s": phase.send_window_s,
        "window_s": phase.window_s,
        "sent": phase.sent,
        "acks": phase.acks,
        "deliveries_expected": phase.expected,
        "deliveries_received": phase.received,
        "deliveries_missing": phase.missing,
        "latency": pct(phase.lat),
        "latency_all_members": pct(phase.per_update_max),
        "ack_latency": pct(phase.ack_lat),
        "http_latency": pct(phase.http_lat),
        "http_status": {str(k): v for k, v in phase.http_status.items()},
        "extra_latency": {k: pct(v) for k, v in phase.extra_lat.items()},
        "deliveries_per_s": phase.received / phase.window_s,
        "frames_in": phase.frames_end - phase.frames_start,
        "frames_in_per_s": (phase.frames_end - phase.frames_start) / phase.window_s,
        "errors": dict(phase.errors),
        "error_count": sum(phase.errors.values()),
        "loadgen_loop_lag_max_ms": phase.loop_lag_max * 1000,
        "usage": phase.usage,
        "notes": phase.notes,
        "window_epoch_ms": [phase.t0_epoch_ms, phase.t_end_epoch_ms],
    }


def _f(v: float | int | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _x(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}x"


def latency_table(rows: list[dict[str, Any]], floors: dict[str, float | None]) -> str:
    head = ("| workload | offered/s | sent | p50 ms | p95 ms | p99 ms | max ms | deliveries (got/expected) | missing |"
            " delivered/s | frames in/s | errors | p50 / Kafka 2-hop floor | p50 / fan-out floor |")
    out = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        lat = r["latency"]
        p50 = None if r["name"].startswith("floor") else lat["p50_ms"]
        ratio_k = p50 / floors["kafka2"] if p50 and floors.get("kafka2") else None
        ratio_f = p50 / floors["fanout"] if p50 and floors.get("fanout") else None
        got = f"{_f(r['deliveries_received'])}/{_f(r['deliveries_expected'])}"
        out.append(
            f"| {r['name']} | {_f(r['offered_rate'], 0)} | {_f(r['sent'])} | {_f(lat['p50_ms'])} |"
            f" {_f(lat['p95_ms'])} | {_f(lat['p99_ms'])} | {_f(lat['max_ms'])} | {got} |"
            f" {_f(r['deliveries_missing'])} | {_f(r['deliveries_per_s'], 0)} | {_f(r['frames_in_per_s'], 0)} |"
            f" {_f(r['error_count'])} | {_x(ratio_k)} | {_x(ratio_f)} |"
        )
    return "\n".join(out)


def usage_table(rows: list[dict[str, Any]]) -> str:
    names: list[str] = []
    for r in rows:
        for n in r["usage"]:
            if n not in names:
                names.append(n)
    head = "| process | " + " | ".join(r["name"] for r in rows) + " |"
    out = [head, "|" + "|".join(["---"] * (len(rows) + 1)) + "|"]
    for n in names:
        cells = []
        for r in rows:
            u = r["usage"].get(n)
            if u is None:
                cells.append("-")
            elif u["peak_rss"]:
                cells.append(f"{u['cpu_pct']:.0f}% / {u['peak_rss'] / MiB:.0f} MiB")
            else:
                cells.append(f"{u['cpu_pct']:.0f}%")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def extra_table(rows: list[dict[str, Any]]) -> str:
    out = ["| workload | measure | n | p50 ms | p95 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        measures = dict(r["extra_latency"])
        if r["ack_latency"]["n"]:
            measures["update -> ack (Kafka acknowledged)"] = r["ack_latency"]
        if r["http_latency"]["n"]:
            measures["HTTP request -> response"] = r["http_latency"]
        if r["latency_all_members"]["n"]:
            measures["update -> last member received"] = r["latency_all_members"]
        for name, s in measures.items():
            out.append(f"| {r['name']} | {name} | {_f(s['n'])} | {_f(s['p50_ms'])} | {_f(s['p95_ms'])} |"
                       f" {_f(s['p99_ms'])} | {_f(s['max_ms'])} |")
    return "\n".join(out)


def plots(phases: list[Phase], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    with_data = [p for p in phases if len(p.lat)]
    fig, ax = plt.subplots(figsize=(10, 6))
    for p in with_data:
        a = np.sort(np.frombuffer(p.lat, dtype=np.float64)) * 1000
        y = np.arange(1, a.size + 1) / a.size
        if a.size > 20000:  # thin the line, keep the tail
            idx = np.unique(np.concatenate([np.linspace(0, a.size - 1, 20000).astype(int),
                                            np.arange(a.size - 200, a.size)]))
            a, y = a[idx], y[idx]
        ax.plot(a, y, label=f"{p.name} (n={len(p.lat):,})", linestyle="--" if p.name.startswith("floor") else "-")
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log)")
    ax.set_ylabel("fraction of deliveries")
    ax.axvline(50, color="grey", linewidth=0.8)
    ax.axvline(15, color="grey", linewidth=0.8, linestyle=":")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Latency CDF per receiving member (dashed: floors); lines at 15 and 50 ms")
    fig.tight_layout()
    fig.savefig(out / "latency_cdf.png", dpi=110)
    plt.close(fig)
    files.append("latency_cdf.png")

    n = len(with_data)
    if n:
        fig, axes = plt.subplots(n, 1, figsize=(10, 2.2 * n), squeeze=False)
        for ax, p in zip(axes[:, 0], with_data, strict=True):
            at = np.frombuffer(p.at, dtype=np.float64)
            lat = np.frombuffer(p.lat, dtype=np.float64) * 1000
            if at.size > 30000:
                rng = np.random.default_rng(0)
                keep = rng.choice(at.size, 30000, replace=False)
                at, lat = at[keep], lat[keep]
            ax.scatter(at, lat, s=1, alpha=0.3)
            ax.set_yscale("log")
            ax.set_ylabel("ms")
            ax.set_title(p.name, fontsize=9)
            ax.grid(True, alpha=0.3)
        axes[-1, 0].set_xlabel("send time, s from the start of the workload")
        fig.tight_layout()
        fig.savefig(out / "latency_over_time.png", dpi=100)
        plt.close(fig)
        files.append("latency_over_time.png")
    return files


def cpu_plot(rows: list[dict[str, Any]], out: Path) -> str:
    """CPU per process in each workload (bars, % of one core), from the rows of results.json's `phases`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in dict.fromkeys(n for r in rows for n in r["usage"]) if not n.startswith("(other")]
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [r["usage"].get(name, {}).get("cpu_pct", 0) for r in rows]
        ax.bar(np.arange(len(rows)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(rows)) + 0.4 - width / 2, [r["name"] for r in rows], rotation=30, fontsize=7,
                  ha="right")
    ax.axhline(200, color="grey", linewidth=0.8)
    ax.set_ylabel("% of one core (the machine has 200 %)")
    ax.set_title("CPU per process in each workload")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "cpu.png", dpi=100)
    plt.close(fig)
    return "cpu.png"

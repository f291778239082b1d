"""Writing analytics out: CSV tables, the same tables as Parquet when pyarrow is installed, PNG plots.

Every time is UTC epoch milliseconds; docs/analytics.md describes every column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.analytics import Analytics, Series

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Table = tuple[tuple[str, ...], list[tuple[object, ...]]]  # column names, rows

TOP_CHANNELS = 5  # channels drawn in the concurrency plot
TOP_USERS = 20  # users drawn in the time-in-status plot
TOP_TYPING_CHANNELS = 15
DAY_MS = 86_400_000
DPI = 80  # the plots are committed under docs/: kept small


def tables(analytics: Analytics) -> dict[str, Table]:
    peaks: list[tuple[object, ...]] = [("", analytics.online.peak.value, analytics.online.peak.at)]
    peaks += [(channel, s.peak.value, s.peak.at) for channel, s in analytics.channels.items()]
    return {
        "concurrency": (("start_ms", "end_ms", "max_online", "mean_online"),
                        [(b.start, b.end, b.max, round(b.mean, 3)) for b in analytics.online.buckets]),
        "channel_concurrency": (
            ("channel", "start_ms", "end_ms", "max_members", "mean_members"),
            [(channel, b.start, b.end, b.max, round(b.mean, 3))
             for channel, series in analytics.channels.items() for b in series.buckets]),
        "peaks": (("channel", "peak", "at_ms"), peaks),  # channel empty: users online in all
        "status_time": (("user_id", "status", "ms"),
                        [(user_id, status, ms) for user_id, by_status in analytics.status_ms.items()
                         for status, ms in by_status.items()]),
        "typing": (("channel", "user_id", "starts", "typing_ms"),
                   [(channel, user_id, t.starts, t.ms) for (channel, user_id), t in analytics.typing.items()]),
    }


def write_csv(analytics: Analytics, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (columns, rows) in tables(analytics).items():
        path = out / f"{name}.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            writer.writerows(rows)
        paths.append(path)
    return paths


def write_parquet(analytics: Analytics, out: Path) -> list[Path]:
    """The CSV tables as Parquet files; none when pyarrow is not installed (it is optional)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, (columns, rows) in tables(analytics).items():
        path = out / f"{name}.parquet"
        pq.write_table(pa.table({column: [row[i] for row in rows] for i, column in enumerate(columns)}), path)
        paths.append(path)
    return paths


def plot(analytics: Analytics, out: Path) -> list[Path]:
    """concurrency.png, status_time.png and typing.png."""
    from matplotlib import rc_context

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (("concurrency", _concurrency), ("status_time", _status_time), ("typing", _typing)):
        with rc_context({"date.converter": "concise"}):  # time ticks that do not repeat the date
            figure = draw(analytics)
        figure.savefig(out / f"{name}.png", dpi=DPI)
        paths.append(out / f"{name}.png")
    return paths


def _figure(height: float) -> Figure:
    # A Figure without pyplot: no window and no global state; the Agg canvas renders the PNG.
    from matplotlib.figure import Figure

    return Figure(figsize=(9, height), layout="constrained")


def _concurrency(analytics: Analytics) -> Figure:
    figure = _figure(5.5)
    total, channels = figure.subplots(2, 1, sharex=True)
    _steps(total, analytics.online)
    total.set_title("Users online")
    busiest = sorted(analytics.channels.items(), key=lambda item: (-item[1].peak.value, item[0]))[:TOP_CHANNELS]
    for channel, series in busiest:
        _step(channels, series, [b.mean for b in series.buckets], label=channel)
    channels.set_title(f"Members of the {len(busiest)} busiest channels (mean per bucket)")
    channels.set_ylim(bottom=0)
    if busiest:
        channels.legend(loc="upper left", fontsize="small")
    channels.set_xlabel("UTC")
    channels.xaxis_date(tz="UTC")
    return figure


def _status_time(analytics: Analytics) -> Figure:
    figure = _figure(5.5)
    axes = figure.subplots()
    by_user = analytics.status_ms
    users = sorted(by_user, key=lambda u: (-sum(by_user[u].values()), u))[:TOP_USERS]
    statuses = sorted({s for by in by_user.values() for s in by},
                      key=lambda s: (-sum(by.get(s, 0) for by in by_user.values()), s))
    left = [0.0] * len(users)
    for status in statuses:
        hours = [by_user[u].get(status, 0) / 3_600_000 for u in users]
        axes.barh(users, hours, left=left, label=status)
        left = [a + b for a, b in zip(left, hours, strict=True)]
    axes.invert_yaxis()
    axes.set_xlabel("hours")
    axes.set_title(f"Time in each status, the {len(users)} users longest online")
    if statuses:
        axes.legend(loc="lower right", fontsize="small")
    return figure


def _typing(analytics: Analytics) -> Figure:
    figure = _figure(4.5)
    starts, minutes = figure.subplots(1, 2, sharey=True)
    shown = sorted(analytics.typing_by_channel().items(), key=lambda item: (-item[1].ms, item[0]))
    shown = shown[:TOP_TYPING_CHANNELS]
    names = [channel for channel, _ in shown]
    starts.barh(names, [t.starts for _, t in shown])
    starts.set_title("Typing starts")
    starts.invert_yaxis()
    minutes.barh(names, [t.ms / 60_000 for _, t in shown])
    minutes.set_title("Minutes typing")
    figure.suptitle("Typing per channel")
    return figure


def _steps(axes: Axes, series: Series) -> None:
    _step(axes, series, [b.max for b in series.buckets], label="max", alpha=0.5)
    _step(axes, series, [b.mean for b in series.buckets], label="mean")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper left", fontsize="small")


def _step(axes: Axes, series: Series, values: Sequence[float], **style: Any) -> None:
    """One value per bucket, held to the bucket's end; times as matplotlib's date numbers (days since
    1970, its default epoch) on a UTC axis."""
    times = [b.start / DAY_MS for b in series.buckets] + [series.buckets[-1].end / DAY_MS]
    axes.step(times, [*values, values[-1]], where="post", **style)

"""Prometheus metrics of a processor worker, served on `PRESENCE_WORKER_METRICS_PORT` (`python -m streams`
starts the server). The Faust adapters count; the pure cores know nothing of this."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram, start_http_server

EVENTS_FOLDED = Counter("presence_worker_events_folded_total", "Events of presence.events folded into users", ["type"])
CHANGES_EMITTED = Counter("presence_worker_changes_emitted_total", "Changes written to presence.changes", ["type"])
CONSUMER_LAG = Gauge(
    "presence_worker_consumer_lag",
    "Records of a presence.events partition this worker holds that it has not read yet (highwater - position)",
    ["partition"],
)
DEAD_LETTERS = Counter("presence_worker_dead_letters_total", "Records written to presence.dead-letters",
                       ["topic"])
SWEEPER_EVENTS = Counter("presence_worker_sweeper_events_total",
                         "Expiries the sweeper wrote (timeouts, expiries, auto-away, forgetting, channel expiry)",
                         ["kind"])
SWEEP_SECONDS = Histogram("presence_worker_sweep_seconds", "Time one sweep took",
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
SNAPSHOTS_WRITTEN = Counter("presence_worker_snapshots_written_total", "Partition snapshots written", ["topic"])

_lag_partitions: set[int] = set()


def lag_sampled(lags: Mapping[int, int]) -> None:
    """The lag of every partition held now; partitions held no more leave the gauge."""
    for partition in _lag_partitions - lags.keys():
        CONSUMER_LAG.remove(str(partition))
    for partition, lag in lags.items():
        CONSUMER_LAG.labels(str(partition)).set(lag)
    _lag_partitions.clear()
    _lag_partitions.update(lags)


def serve(host: str, port: int) -> None:
    """In a thread of its own: a scrape must not wait for the event loop, nor slow it."""
    start_http_server(port, host)

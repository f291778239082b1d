"""Prometheus metrics of the edge."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

CONNECTIONS = Gauge("presence_ws_connections", "Open WebSocket connections on this edge")
FRAMES_IN = Counter("presence_ws_frames_in_total", "Client frames received", ["type"])
FRAMES_OUT = Counter("presence_ws_frames_out_total", "Frames pushed to clients")
ERRORS = Counter("presence_errors_total", "Errors answered to clients", ["code"])
EVENTS_WRITTEN = Counter("presence_events_written_total", "Events acknowledged by the log", ["type"])
WRITE_SECONDS = Histogram(
    "presence_event_write_seconds",
    "Time from handing events to the log to Kafka's acknowledgement",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
VIEWS_APPLIED = Counter("presence_channel_views_total", "Channel views folded from presence.channel-changes")
# Views cannot be fresher than the processor, and every timeout comes this much later: what to alert on.
PROCESSOR_LAG = Gauge(
    "presence_processor_lag_seconds",
    "How long the oldest heartbeat this edge wrote has waited for the processor to apply it (0: none waits)",
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST

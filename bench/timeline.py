"""A timeline of the whole run, sampled every `interval_s`: where a backlog builds up and when.

- broker produce probe: one record to `bench.probe` (acks=all, linger 0) and the time to its ack;
- per edge, from /metrics: events written/s, the mean time from handing events to the log to
  Kafka's ack (`presence_event_write_seconds`), open WebSocket connections;
- in the load generator: frames received/s, the workload running.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.load import Harness, perf
from schemas.topics import TopicSpec
from services.broker import create_topics

PROBE_TOPIC = "bench.probe"


def _metrics(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name = head.split("{", 1)[0]
        if name in ("presence_event_write_seconds_sum", "presence_event_write_seconds_count",
                    "presence_events_written_total", "presence_ws_connections", "presence_ws_frames_out_total",
                    "presence_channel_views_total"):
            with contextlib.suppress(ValueError):
                out[name] = out.get(name, 0.0) + float(value)
    return out


class Timeline:
    def __init__(self, bootstrap: str, edge_ports: list[int], harness: Harness, interval_s: float = 2.0) -> None:
        self.bootstrap = bootstrap
        self.edge_ports = edge_ports
        self.harness = harness
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self.t0 = perf()
        self._task: asyncio.Task[None] | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        await create_topics(self.bootstrap, 1, [TopicSpec(PROBE_TOPIC, "-", "bytes", "delete", "probe")])
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                          enable_idempotence=False)
        await self._producer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            await self._producer.stop()

    async def _probe(self) -> float | None:
        assert self._producer is not None
        t = perf()
        try:
            delivery = await self._producer.send(PROBE_TOPIC, b"probe")
            await asyncio.wait_for(delivery, 30)
        except Exception:  # noqa: BLE001
            return None
        return perf() - t

    async def _run(self) -> None:
        previous: dict[int, dict[str, float]] = {}
        last_frames, last_t = self.harness.frames, perf()
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    last_frames, last_t = await self._sample(http, previous, last_frames, last_t)
                except Exception as exc:  # noqa: BLE001  a sampler must not end the run
                    self.samples.append({"t": perf() - self.t0, "phase": self.harness.phase.name,
                                         "error": repr(exc)})

    async def _sample(self, http: httpx.AsyncClient, previous: dict[int, dict[str, float]], last_frames: int,
                      last_t: float) -> tuple[int, float]:
        probe = asyncio.create_task(self._probe())
        sample: dict[str, Any] = {"t": perf() - self.t0, "phase": self.harness.phase.name,
                                  "wall": time.time()}
        now = perf()
        sample["frames_in_per_s"] = (self.harness.frames - last_frames) / (now - last_t)
        last_frames, last_t = self.harness.frames, now
        for port in self.edge_ports:
            try:
                m = _metrics((await http.get(f"http://127.0.0.1:{port}/metrics")).text)
            except httpx.HTTPError:
                continue
            m["_t"] = perf()
            p = previous.get(port)
            if p is not None:
                dc = m.get("presence_event_write_seconds_count", 0) - p.get("presence_event_write_seconds_count", 0)
                ds = m.get("presence_event_write_seconds_sum", 0) - p.get("presence_event_write_seconds_sum", 0)
                dt = max(1e-9, m["_t"] - p["_t"])
                sample[f"edge:{port} write_mean_ms"] = 1000 * ds / dc if dc else None
                sample[f"edge:{port} events_written_per_s"] = (
                    m.get("presence_events_written_total", 0) - p.get("presence_events_written_total", 0)) / dt
                sample[f"edge:{port} channel_views_applied_per_s"] = (
                    m.get("presence_channel_views_total", 0) - p.get("presence_channel_views_total", 0)) / dt
                sample[f"edge:{port} frames_out_per_s"] = (
                    m.get("presence_ws_frames_out_total", 0) - p.get("presence_ws_frames_out_total", 0)) / dt
            sample[f"edge:{port} connections"] = m.get("presence_ws_connections")
            previous[port] = m
        latency = await probe
        sample["broker_produce_ack_ms"] = None if latency is None else latency * 1000
        self.samples.append(sample)
        return last_frames, last_t

    def plot(self, path: Any) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if not self.samples:
            return
        t = [s["t"] for s in self.samples]
        fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
        axes[0].plot(t, [s.get("broker_produce_ack_ms") for s in self.samples], ".", markersize=3,
                     label="probe produce -> ack (acks=all)")
        for key in sorted({k for s in self.samples for k in s if k.endswith("write_mean_ms")}):
            axes[0].plot(t, [s.get(key) for s in self.samples], "-", linewidth=0.8, label=key)
        axes[0].set_yscale("log")
        axes[0].set_ylabel("ms")
        axes[0].legend(fontsize=7)
        axes[0].set_title("Kafka acknowledgement latency (probe producer; edge event writes, mean per interval)",
                          fontsize=9, pad=34)
        for key in sorted({k for s in self.samples for k in s if k.endswith("events_written_per_s")}):
            axes[1].plot(t, [s.get(key) for s in self.samples], "-", linewidth=0.8, label=key)
        for key in sorted({k for s in self.samples for k in s if k.endswith("channel_views_applied_per_s")}):
            axes[1].plot(t, [s.get(key) for s in self.samples], "--", linewidth=0.8, label=key)
        axes[1].set_ylabel("per s")
        axes[1].legend(fontsize=7)
        axes[1].set_title("in: events written by the edges; out: channel views from the processor", fontsize=9)
        axes[2].plot(t, [s.get("frames_in_per_s") for s in self.samples], "-", linewidth=0.8,
                     label="frames received by the load generator")
        for key in sorted({k for s in self.samples for k in s if k.endswith("frames_out_per_s")}):
            axes[2].plot(t, [s.get(key) for s in self.samples], "--", linewidth=0.8, label=key)
        axes[2].set_ylabel("frames/s")
        axes[2].legend(fontsize=7)
        axes[2].set_xlabel("s from the start of the run")
        # workload boundaries
        last = None
        for s in self.samples:
            if s["phase"] != last:
                for ax in axes:
                    ax.axvline(s["t"], color="grey", linewidth=0.5)
                axes[0].text(s["t"], 1.02, s["phase"], transform=axes[0].get_xaxis_transform(), fontsize=6,
                             rotation=30)
                last = s["phase"]
        for ax in axes:
            ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

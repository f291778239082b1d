"""Work-arounds for faust-streaming defaults that cost latency or CPU here (docs/architecture.md).

- Faust hard-codes the worker consumer's fetch wait to 1500 ms; the broker answers a waiting
  fetch only when the wait ends, so that wait is added to every hop. We set it on the consumer
  before it starts (aiokafka reads it when it builds its fetcher).
- The worker leaves the root, `faust` and `aiokafka` loggers at DEBUG whatever `-l` says;
  building the discarded records cost 12-40% of the worker's CPU when measured.
"""

from __future__ import annotations

import logging
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


def set_fetch_wait(fetch_wait_ms: int) -> None:
    create = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer

    def create_with_fetch_wait(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = fetch_wait_ms
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create_with_fetch_wait


def quiet_loggers(level: int = logging.WARNING) -> None:
    for name in ("", "faust", "aiokafka", "mode"):
        logging.getLogger(name).setLevel(level)

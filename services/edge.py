"""The edge's parts and their lifecycle: producer, event log, read model, fan-out, liveness, the watch
on what the processor holds of this edge's connections, and the closing of what a previous
incarnation of this edge left open."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from services.auth import Authenticator
from services.broker import group_less_reader
from services.event_log import EventLog, now_ms
from services.fanout import Fanout
from services.keys import Jwks
from services.liveness import Liveness
from services.policy import Policy
from services.previous_incarnation import PreviousIncarnation
from services.processor_watch import HeldConnections, ProcessorWatch
from services.protocol import Limits
from services.read_model import ReadModel
from services.readiness import Readiness
from services.settings import EdgeSettings
from services.watchers import Watchers


@dataclass
class Edge:
    settings: EdgeSettings
    auth: Authenticator
    policy: Policy
    limits: Limits
    log: EventLog
    read_model: ReadModel
    fanout: Fanout
    liveness: Liveness
    held: HeldConnections  # this edge's open connections, judged against the processor's states
    readiness: Readiness
    watchers: Watchers
    sessions: Counter[str] = field(default_factory=Counter)  # user id -> open connections on this edge

    def connections_of(self, user_id: str) -> int:
        return self.sessions[user_id]


@contextlib.asynccontextmanager
async def running_edge(settings: EdgeSettings) -> AsyncIterator[Edge]:
    # Read before anything starts (an unusable set stops the edge) and before serving, so the first token
    # check does not wait for it.
    jwks = await Jwks.load(settings.jwks_file, settings.jwks_url) if settings.jwks_file or settings.jwks_url else None
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.edge_id,
        acks="all",
        enable_idempotence=settings.idempotent_producer,  # off only on Tansu, which refuses InitProducerId
        linger_ms=0,
    )
    consumer = group_less_reader(settings.bootstrap_servers, f"{settings.edge_id}-views", settings.fetch_wait_ms)
    probe_answers = group_less_reader(settings.bootstrap_servers, f"{settings.edge_id}-probes", settings.fetch_wait_ms)
    await producer.start()
    await consumer.start()
    await probe_answers.start()
    event_log = EventLog(producer, settings.partitions, settings.batch_linger_ms, settings.write_timeout_s)
    fanout = Fanout(settings.batch_above_members, settings.batch_window_ms / 1000)
    read_model = ReadModel(consumer, settings.bootstrap_servers, fanout.publish)
    watchers = Watchers(read_model)
    read_model.user_listener = watchers.changed
    liveness = Liveness(event_log, settings.edge_id, interval_s=settings.heartbeat_s / 2,
                        partitions=settings.partitions, since=now_ms())
    policy = Policy.load(settings.policy_file)
    limits = Limits(
        policy=policy,
        max_bytes=settings.max_frame_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
    )
    auth = Authenticator(
        settings.jwt_secret, settings.jwt_audience or None, settings.jwt_issuer or None, settings.open_channels,
        settings.service_keys, jwks,
    )
    held = HeldConnections()
    readiness = Readiness(event_log, probe_answers, settings.edge_id, settings.partitions,
                          settings.probe_interval_s, settings.probe_timeout_s)
    edge = Edge(settings, auth, policy, limits, event_log, read_model, fanout, liveness, held, readiness, watchers)
    watch = ProcessorWatch(settings.bootstrap_servers, settings.edge_id, settings.partitions, settings.fetch_wait_ms,
                           held, on_held=liveness.processor_holds, on_lease=liveness.lease_applied)
    previous = PreviousIncarnation(settings.bootstrap_servers, settings.edge_id, settings.partitions, event_log,
                                   settings.fetch_wait_ms)
    refreshing = asyncio.create_task(jwks.refresh_forever()) if jwks is not None else None
    try:
        await event_log.start()
        await read_model.start()
        await liveness.start()
        await watch.start()  # before serving: it reads from the end it finds, so it sees every new connection
        await previous.start()  # before serving: what it will close cannot include this incarnation's
        await readiness.start()
        yield edge
    finally:
        if refreshing is not None:
            refreshing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refreshing
        await readiness.stop()
        await previous.stop()
        await watch.stop()
        await liveness.stop()
        await read_model.stop()
        await event_log.stop()
        await probe_answers.stop()
        await consumer.stop()
        await producer.stop()

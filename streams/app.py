"""The Faust application: topics and tables, built from the contracts in `schemas.topics`."""

from __future__ import annotations

import faust

from schemas import topics
from streams import codecs  # noqa: F401  (registers the table value codecs)
from streams.continuity import leave_skipped_offsets_unacknowledged
from streams.settings import WorkerSettings
from streams.tuning import enable_idempotence, set_fetch_wait

settings = WorkerSettings.from_env()
set_fetch_wait(settings.fetch_wait_ms)
if settings.idempotent_producer:
    enable_idempotence()
leave_skipped_offsets_unacknowledged()

app = faust.App(
    topics.PROCESSOR_GROUP,
    broker=f"kafka://{settings.bootstrap_servers}",
    store=settings.table_store,
    datadir=settings.datadir,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    table_standby_replicas=0,
    producer_acks=-1,
    processing_guarantee=settings.processing_guarantee,
    consumer_auto_offset_reset="earliest",
    # How soon a crashed worker's partitions move to a live one (Faust's default is 60 s).
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
    web_enabled=False,
)


def _topic(spec: topics.TopicSpec) -> faust.TopicT:
    return app.topic(
        spec.name,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        config=spec.config(),
    )


events_topic = _topic(topics.EVENTS)
changes_topic = _topic(topics.CHANGES)
channel_changes_topic = _topic(topics.CHANNEL_CHANGES)
channel_snapshots_topic = _topic(topics.CHANNEL_SNAPSHOTS)
user_snapshots_topic = _topic(topics.USER_SNAPSHOTS)
channels_topic = _topic(topics.CHANNELS)
users_topic = _topic(topics.USERS)
dead_letters_topic = _topic(topics.DEAD_LETTERS)
probes_topic = _topic(topics.PROBES)
erasures_topic = _topic(topics.ERASURES)


class StateTable(faust.Table):  # type: ignore[type-arg]  # keys str, values per subclass
    """A table of our state dataclasses: raw string keys, values through one of `streams.codecs`.

    Faust picks a table's serializers from Faust model types only, while building the table and
    its changelog topic; this is the hook it offers to choose them for other types.
    """

    value_codec: str = ""

    def _serializer_from_type(self, typ: object) -> str:
        return "raw" if typ is str else self.value_codec


def _table(name: str, value_codec: str) -> StateTable:
    table_class: type[StateTable] = type(f"{name.title()}Table", (StateTable,), {"value_codec": value_codec})
    table = table_class(app, name=name, key_type=str, partitions=settings.partitions)
    app.tables.add(table)
    return table


users = _table("users", "presence_user")
channels = _table("channels", "presence_channel")
leases = _table("leases", "presence_lease")


def lease_key(edge_id: str, partition: int) -> str:
    """A table key lives in one partition, so an edge has a lease per partition."""
    return f"{edge_id}/{partition}"


def lease_partition(key: str) -> int:
    return int(key.rpartition("/")[2])

"""Topic contracts: name, key, value record, partitioning and cleanup policy.

Every process derives partitions from `partition_for`, the Kafka default partitioner (murmur2 of
the key bytes), so a record the edge sends to an explicit partition lands where the processor's
tables expect that user's state, and downstream consumers can locate a user or channel.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from aiokafka.partitioner import murmur2


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    key: str
    value: str
    cleanup_policy: Literal["delete", "compact"]
    description: str
    retention_ms: int | None = None

    def config(self) -> dict[str, str]:
        """The topic configuration it is created with."""
        config: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        return config


DEFAULT_PARTITIONS = 8
DAY_MS = 24 * 3600 * 1000
# How long history is kept (docs/history.md): longer than a user's state lives (30 days, the default
# PRESENCE_USER_RETENTION_S), so a replay from the start of the log rebuilds every user still known.
HISTORY_RETENTION_MS = 35 * DAY_MS

EVENTS = TopicSpec(
    name="presence.events",
    key="user id when the batch holds one user's events, else absent; the partition is always partition_for(user id)",
    value="EventBatch",
    cleanup_policy="delete",
    retention_ms=HISTORY_RETENTION_MS,
    description="Source of truth: connection, heartbeat, channel, update and timeout events, batched per partition.",
)
CHANGES = TopicSpec(
    name="presence.changes",
    key="user id",
    value="Change (user.* and member.*)",
    cleanup_policy="delete",
    retention_ms=HISTORY_RETENTION_MS,
    description="Every transition of every user, derived by the processor.",
)
CHANNEL_CHANGES = TopicSpec(
    name="presence.channel-changes",
    key="channel id",
    value="Change (member.* only)",
    cleanup_policy="delete",
    retention_ms=HISTORY_RETENTION_MS,
    description="Repartition of member changes by channel, feeding the channel stage; with the channel "
                "snapshots, the channels' history.",
)
CHANNEL_SNAPSHOTS = TopicSpec(
    name="presence.channel-snapshots",
    key="channel id; absent on a snapshot's closing record",
    value="ChannelSnapshot",
    cleanup_policy="delete",
    retention_ms=HISTORY_RETENTION_MS,
    description="Every PRESENCE_SNAPSHOT_INTERVAL_S, each partition's channels with the position they reflect.",
)
USER_SNAPSHOTS = TopicSpec(
    name="presence.user-snapshots",
    key="user id, or {edge id}/{partition} for a lease; absent on a snapshot's closing record",
    value="UserSnapshot",
    cleanup_policy="delete",
    retention_ms=HISTORY_RETENTION_MS,
    description="Every PRESENCE_SNAPSHOT_INTERVAL_S, each partition's users and leases with the position they reflect.",
)
CHANNELS = TopicSpec(
    name="presence.channels",
    key="channel id",
    value="ChannelView",
    cleanup_policy="compact",
    description="Channel views with a monotonic seq: the latest record of a channel is its snapshot.",
)

USERS = TopicSpec(
    name="presence.users",
    key="user id",
    value="UserView",
    cleanup_policy="compact",
    description="User views: the latest record of a user is its status, last seen, devices and metadata.",
)

DEAD_LETTERS = TopicSpec(
    name="presence.dead-letters",
    key="the failed record's key",
    value="DeadLetter",
    cleanup_policy="delete",
    retention_ms=30 * DAY_MS,
    description="Records the processor could not decode or apply, with the error; the partition goes on.",
)

PROBES = TopicSpec(
    name="presence.probes",
    key="edge id",
    value="ProbeAnswered",
    cleanup_policy="delete",
    retention_ms=3600 * 1000,
    description="Answers to the edges' readiness probes, written by the channel stage (schemas/probes.py).",
)

ERASURES = TopicSpec(
    name="presence.erasures",
    key="user id",
    value="UserErasure",
    cleanup_policy="compact",
    description="The users who asked to be erased, each with the time of its latest erasure: history reads omit "
                "what the log holds of them up to then (docs/history.md#erasure). Kept for good.",
)

ALL = (EVENTS, CHANGES, CHANNEL_CHANGES, CHANNEL_SNAPSHOTS, USER_SNAPSHOTS, CHANNELS, USERS, DEAD_LETTERS, PROBES,
       ERASURES)

# The processor's Faust application id, which is also its consumer group: an edge reads the group's
# committed offsets of `presence.channel-changes` to know where the channels changelog leaves off.
PROCESSOR_GROUP = "presence"

# The processor's table changelogs (Faust names them `{app}-{table}-changelog`), part of the contract
# too: their records are `schemas.state` values (an edge reads the users one when it restarts).
USERS_CHANGELOG = "presence-users-changelog"
CHANNELS_CHANGELOG = "presence-channels-changelog"
LEASES_CHANGELOG = "presence-leases-changelog"

# Created with the topics above, before any worker starts: workers starting together on a new
# cluster each create a changelog Faust does not find yet in its metadata, and the first table write
# of the one that lost the race crashed its agent (PartitionsMismatch: "0 partitions").
TABLE_CHANGELOGS = (
    TopicSpec(name=USERS_CHANGELOG, key="user id", value="UserPresence", cleanup_policy="compact",
              description="The processor's `users` table."),
    TopicSpec(name=CHANNELS_CHANGELOG, key="channel id", value="ChannelState", cleanup_policy="compact",
              description="The processor's `channels` table."),
    TopicSpec(name=LEASES_CHANGELOG, key="{edge id}/{partition}", value="EdgeLease", cleanup_policy="compact",
              description="The processor's `leases` table: each edge's newest lease in each partition."),
)


def partition_for(key: str, partitions: int) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def batch_key(user_ids: Iterable[str]) -> bytes | None:
    """The key of an `EventBatch` record: its user's id when it holds one user's events, else none."""
    users = set(user_ids)
    return users.pop().encode() if len(users) == 1 else None

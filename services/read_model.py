"""The edge's local read model: every channel's membership and every user's latest view.

Each edge folds `presence.channel-changes` itself, with the channel stage's own pure function
(`streams.channels.apply_member_change_at`), instead of waiting for the channel stage's views on
`presence.channels`: a presence change reaches subscribers after two Kafka hops, not three, and the
edge decodes one small change per step, not the whole member list. The fold is deterministic, so
every edge numbers the steps with the same `seq` as the channel stage does.

Where an edge starts (no consumer group: every edge needs every channel):
1. the processor group's committed offsets of `presence.channel-changes`, taken first;
2. the channel stage's table, `presence-channels-changelog`, read to the end it had then. The
   processor writes its changelog before it commits, so those states include every change below
   the committed offsets; a state ahead of them skips the records it already holds
   (`ChannelState.applied_offset`);
3. `presence.channel-changes` from the committed offsets on, and `presence.users` whole, for good.

It hands each new channel view to a listener (the fan-out), tells `user_listener` (the watchers)
which user's view or channels changed, wakes anyone waiting for a user's update to be applied, and
is ready once it has read up to the highwater of every partition. The same fold keeps an index of
the channels each user is present in (`channels_of`), for the read rule (services/visibility.py)
and the `channels` of a user's view.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Set
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from schemas.changes import ChannelChange, ChannelExpired, ChannelView, Member, MemberChange, UserView
from schemas.codec import DecodeError, decode, decode_change
from schemas.state import ChannelState
from schemas.topics import CHANNEL_CHANGES, CHANNELS_CHANGELOG, USERS
from services import metrics
from services.broker import processor_offsets, topic_partitions
from streams.channels import apply_member_change_at

log = logging.getLogger(__name__)
T = TypeVar("T")
_NONE: frozenset[str] = frozenset()

Listener = Callable[[ChannelView, int], None]  # (new view, seq the edge had before)
UserListener = Callable[[str, str | None], None]  # (user whose view changed, or the channel it joined or left)
HISTORY = 64  # recent views kept per channel, so a client resuming with `since` gets only what it missed


class ReadModel:
    def __init__(self, consumer: AIOKafkaConsumer, bootstrap_servers: str, listener: Listener,
                 user_listener: UserListener | None = None) -> None:
        self._consumer = consumer
        self._bootstrap_servers = bootstrap_servers
        self._listener = listener
        self.user_listener = user_listener  # set by the edge once its watchers exist (they read this model)
        self._channels: dict[str, ChannelState] = {}
        self._history: dict[str, deque[ChannelView]] = {}
        self._users: dict[str, UserView] = {}
        self._present_in: dict[str, set[str]] = {}  # user id -> the channels it is present in
        self._user_waiters: dict[str, list[tuple[str, asyncio.Future[UserView]]]] = {}
        self._gone_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._partitions: list[TopicPartition] = []
        self._caught_up: set[TopicPartition] = set()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return bool(self._partitions) and len(self._caught_up) == len(self._partitions)

    def view(self, channel: str) -> ChannelView:
        state = self._channels.get(channel)
        if state is None:
            return ChannelView(channel=channel, seq=0, at=0, members=())
        return ChannelView(channel=channel, seq=state.seq, at=state.changed_at, members=state.members,
                           typing=state.typing)

    def views_since(self, channel: str, seq: int) -> list[ChannelView] | None:
        """The views after `seq` in order, or None when they are no longer all held."""
        current = self.view(channel).seq
        if seq == current:
            return []
        history = self._history.get(channel)
        if not history or seq > current or history[0].seq > seq + 1:
            return None
        return [v for v in history if v.seq > seq]

    def user(self, user_id: str) -> UserView | None:
        return self._users.get(user_id)

    def channels_of(self, user_id: str) -> Set[str]:
        """The channels the user is present in now (a live set: copy it to keep it)."""
        return self._present_in.get(user_id, _NONE)

    def channels(self) -> Iterator[ChannelState]:
        """Every channel with members, in no order."""
        return (state for state in self._channels.values() if state.members)

    async def wait_for_user_event(self, user_id: str, event_id: str, timeout_s: float) -> UserView:
        """The user's view once it reflects `event_id`; raises TimeoutError otherwise."""
        current = self._users.get(user_id)
        if current is not None and current.event_id == event_id:
            return current
        future: asyncio.Future[UserView] = asyncio.get_running_loop().create_future()
        self._user_waiters.setdefault(user_id, []).append((event_id, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            waiters = self._user_waiters.get(user_id, [])
            if (event_id, future) in waiters:
                waiters.remove((event_id, future))
            if not waiters:
                self._user_waiters.pop(user_id, None)

    async def wait_for_user_gone(self, user_id: str, timeout_s: float) -> None:
        """Once the user has no view (erased, or forgotten); raises TimeoutError otherwise."""
        if user_id not in self._users:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._gone_waiters.setdefault(user_id, []).append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        finally:
            waiters = self._gone_waiters.get(user_id, [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._gone_waiters.pop(user_id, None)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._consume_forever(), name="read-model")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _partitions_of(self, topic: str) -> list[TopicPartition]:
        partitions = await topic_partitions(self._consumer, topic)
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist; create the topics first (`presence up`)")
        return partitions

    async def _consume_forever(self) -> None:
        changes = await self._partitions_of(CHANNEL_CHANGES.name)
        users = await self._partitions_of(USERS.name)
        committed = await processor_offsets(self._bootstrap_servers, changes)
        await self._read_channels_changelog()
        self._partitions = changes + users
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*users)
        for tp in changes:
            if committed.get(tp) is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed[tp])
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                apply = self._apply_change if tp.topic == CHANNEL_CHANGES.name else self._apply_user
                for record in records:
                    apply(record)
            for tp in self._partitions:
                highwater = self._consumer.highwater(tp)
                if highwater is not None and await self._consumer.position(tp) >= highwater:
                    self._caught_up.add(tp)

    async def _read_channels_changelog(self) -> None:
        """The channel stage's states, up to the end the changelog has now."""
        partitions = await self._partitions_of(CHANNELS_CHANGELOG)
        ends = await self._consumer.end_offsets(partitions)
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            batches = await self._consumer.getmany(*pending, timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        self._apply_state(record)
            pending = {tp for tp in pending if await self._consumer.position(tp) < ends[tp]}

    def _apply_state(self, record: ConsumerRecord[bytes, bytes]) -> None:
        channel = (record.key or b"").decode(errors="replace")
        if record.value is None:
            if (gone := self._channels.pop(channel, None)) is not None:
                self._index(channel, left=_ids(gone.members))
            return
        state = _decode(record.value, ChannelState)
        if state is not None:
            self.start_from(state)

    def start_from(self, state: ChannelState) -> None:
        """A channel as the channel stage's changelog holds it; the fold goes on from there."""
        before = self._channels.get(state.channel)
        self._channels[state.channel] = state
        self._index(state.channel, left=_ids(before.members) if before is not None else (), joined=_ids(state.members))

    def _apply_change(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:
            return
        try:
            change = decode_change(decode(record.value, dict))
        except DecodeError as exc:
            log.error("skipping undecodable channel change at %s/%s: %s", record.partition, record.offset, exc)
            return
        if not isinstance(change, MemberChange | ChannelExpired):
            return  # a readiness probe on its way to the channel stage
        self.apply_change(change, record.offset)

    def apply_change(self, change: ChannelChange, offset: int) -> None:
        """Fold one record of `presence.channel-changes`, as the channel stage does, and publish what changed."""
        before = self._channels.get(change.channel)
        try:
            state, view = apply_member_change_at(before, change, offset)
        except Exception:  # as in the channel stage, which dead-letters it: the partition goes on
            log.exception("skipping a channel change the fold refused at offset %s", offset)
            return
        if state is None:
            if before is not None:
                # The channel stayed empty and is forgotten: subscribers start over from the empty
                # channel at seq 0; a new life's first view is a diff from there.
                del self._channels[change.channel]
                self._history.pop(change.channel, None)
                self._index(change.channel, left=_ids(before.members))
                self._listener(self.view(change.channel), before.seq)
            return
        if view is None:
            return
        self._channels[change.channel] = state
        self._history.setdefault(change.channel, deque(maxlen=HISTORY)).append(view)
        if view.joins or view.leaves:
            self._index(change.channel, left=(d.user_id for d in view.leaves), joined=_ids(view.joins))
        metrics.VIEWS_APPLIED.inc()
        self._listener(view, before.seq if before is not None else 0)

    def _apply_user(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is None:  # the processor forgot the user (offline beyond the retention), or erased it
            user_id = (record.key or b"").decode(errors="replace")
            self._users.pop(user_id, None)
            for gone in self._gone_waiters.get(user_id, []):
                if not gone.done():
                    gone.set_result(None)
            self._user_changed(user_id)
            return
        view = _decode(record.value, UserView)
        if view is None:
            return
        self._users[view.user_id] = view
        for event_id, future in self._user_waiters.get(view.user_id, []):
            if event_id == view.event_id and not future.done():
                future.set_result(view)
        self._user_changed(view.user_id)

    def _index(self, channel: str, left: Iterable[str] = (), joined: Iterable[str] = ()) -> None:
        """Keeps `channels_of` in step with the channel's members: costs the members that moved, not the channel."""
        moved: list[str] = []
        for user_id in left:
            present = self._present_in.get(user_id)
            if present is not None and channel in present:
                present.discard(channel)
                if not present:
                    del self._present_in[user_id]
                moved.append(user_id)
        for user_id in joined:
            present = self._present_in.setdefault(user_id, set())
            if channel not in present:
                present.add(channel)
                moved.append(user_id)
        for user_id in moved:
            self._user_changed(user_id, channel)

    def _user_changed(self, user_id: str, moved_in: str | None = None) -> None:
        if self.user_listener is not None:
            self.user_listener(user_id, moved_in)


def _ids(members: Iterable[Member]) -> Iterator[str]:
    return (m.user_id for m in members)


def _decode(value: bytes, cls: type[T]) -> T | None:
    try:
        return decode(value, cls)
    except DecodeError as exc:
        log.error("skipping undecodable %s: %s", cls.__name__, exc)
        return None

"""The live handles a `Client` gives out: `ChannelPresence` (a joined or subscribed channel) and
`WatchedUsers` (a watched set of users). Their state changes only when the client applies a frame;
they reach the network through their client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

from presence_client.channel import ChannelView
from presence_client.errors import ClientClosedError, PresenceClientError, PresenceError
from presence_client.records import ChannelChange, Member, UserChange, UserGone, UserPresence

if TYPE_CHECKING:
    from presence_client.client import Client

T = TypeVar("T")
log = logging.getLogger("presence_client")


class Listeners(Generic[T]):
    """Callbacks and `async for` iterators of one handle's changes."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], None]] = []
        self._queues: list[asyncio.Queue[T | None]] = []
        self._ended: PresenceClientError | None = None

    def add(self, callback: Callable[[T], None]) -> Callable[[], None]:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def emit(self, change: T) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(change)
            except Exception:  # the application's bug must not stop the client applying frames
                log.exception("presence change callback failed")
        for queue in self._queues:
            queue.put_nowait(change)

    def end(self, error: PresenceClientError) -> None:
        self._ended = error
        for queue in self._queues:
            queue.put_nowait(None)

    def stream(self) -> AsyncGenerator[T]:
        """Changes from this call on (not from the first `anext`, so none is missed in between); ends when
        the handle is left or the client closed, raises the error that ended the client."""
        queue: asyncio.Queue[T | None] = asyncio.Queue()
        if self._ended is None:
            self._queues.append(queue)
        return self._drain(queue)

    async def _drain(self, queue: asyncio.Queue[T | None]) -> AsyncGenerator[T]:
        try:
            while self._ended is None or not queue.empty():
                if (change := await queue.get()) is None:
                    break
                yield change
        finally:
            if queue in self._queues:
                self._queues.remove(queue)
        if self._ended is not None and not isinstance(self._ended, ClientClosedError):
            raise self._ended


class Throttle:
    """Lets one action through per `interval_s`; `clock` is injectable for tests."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None

    def ready(self) -> bool:
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def reset(self) -> None:
        self._last = None


class ChannelPresence:
    """Who is in a channel and who is typing, kept current by the client (join or subscribe)."""

    def __init__(self, client: Client, channel: str, joined: bool, throttle: Throttle) -> None:
        self.channel = channel
        self.joined = joined  # False: subscribed, observing without being present
        self.view = ChannelView(channel)
        self._client = client
        self._throttle = throttle
        self._typing_sent = False
        self.listeners: Listeners[ChannelChange] = Listeners()

    @property
    def members(self) -> Mapping[str, Member]:
        return self.view.members

    @property
    def typing_users(self) -> frozenset[str]:
        return self.view.typing

    @property
    def seq(self) -> int | None:
        return self.view.seq

    @property
    def occupancy(self) -> int:
        return self.view.occupancy

    def changes(self) -> AsyncGenerator[ChannelChange]:
        return self.listeners.stream()

    def on_change(self, callback: Callable[[ChannelChange], None]) -> Callable[[], None]:
        """Calls `callback` with each change; returns a function that removes it."""
        return self.listeners.add(callback)

    async def wait_until(self, condition: Callable[[ChannelPresence], bool]) -> None:
        """Returns once `condition(self)` holds, checked now and after every change."""
        if condition(self):
            return
        async with contextlib.aclosing(self.changes()) as changes:
            async for _ in changes:
                if condition(self):
                    return

    async def typing(self, timeout_s: float | None = None) -> None:
        """Call on every keystroke: sends `typing.start` at most once per throttle interval."""
        if not self.joined:
            raise PresenceError("channel.not_joined", "typing needs a join, not a subscription")
        if not self._throttle.ready():
            return
        frame: dict[str, object] = {"type": "typing.start", "channel": self.channel}
        if timeout_s is not None:
            frame["timeout_s"] = timeout_s
        self._typing_sent = True
        await self._client.send(frame)

    async def stop_typing(self) -> None:
        self._throttle.reset()
        if self._typing_sent:
            self._typing_sent = False
            await self._client.send({"type": "typing.stop", "channel": self.channel})

    async def leave(self) -> None:
        """`leave` a joined channel, `unsubscribe` a subscribed one; the handle stops changing."""
        await self._client.leave(self.channel)


class WatchedUsers(Mapping[str, UserPresence]):
    """A live mapping of watched users to their presence (`Client.watch`). Users the reader may not see,
    or unknown, are in `not_found` until the service pushes them."""

    def __init__(self, client: Client, user_ids: frozenset[str]) -> None:
        self.user_ids = user_ids
        self.users: dict[str, UserPresence] = {}
        self.not_found: frozenset[str] = frozenset()
        self._client = client
        self.listeners: Listeners[UserChange] = Listeners()

    def __getitem__(self, user_id: str) -> UserPresence:
        return self.users[user_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.users)

    def __len__(self) -> int:
        return len(self.users)

    def changes(self) -> AsyncGenerator[UserChange]:
        return self.listeners.stream()

    def on_change(self, callback: Callable[[UserChange], None]) -> Callable[[], None]:
        return self.listeners.add(callback)

    def answered(self, users: Mapping[str, UserPresence], not_found: frozenset[str]) -> None:
        self.users.update(users)
        self.not_found = not_found
        for user_id in not_found:
            self.users.pop(user_id, None)

    def changed(self, change: UserChange) -> None:
        if isinstance(change, UserGone):
            self.users.pop(change.user_id, None)
            self.not_found |= {change.user_id}
        else:
            self.users[change.user_id] = change
            self.not_found -= {change.user_id}
        self.listeners.emit(change)

    async def unwatch(self) -> None:
        await self._client.unwatch(self)

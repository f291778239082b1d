"""A service's socket, opened with a service key: it reads (subscribe, watch) and is nobody's presence, so nothing
is written to the log for it."""

from __future__ import annotations

import asyncio

from services.errors import ApiError
from services.protocol import Command, Join, Leave, TypingStart, TypingStop, Update
from services.session import Session


class ObserverSession(Session):
    """A service's socket: it subscribes and watches, and is no user's presence. No connection is opened
    in the log for it (no heartbeats, no lease), and frames that would act as a user are refused."""

    async def run(self) -> None:
        self._writer = asyncio.create_task(self._write_forever(), name=f"ws-writer-{self.connection_id}")
        self.reply({**self._welcome(), "service": self.principal.service})
        try:
            await self._read_forever()
        finally:
            await asyncio.shield(self._end(clean=True))

    async def _handle(self, command: Command) -> None:
        if isinstance(command, Join | Leave | TypingStart | TypingStop | Update):
            raise ApiError("auth.service_observer", "a service's socket may subscribe, watch, heartbeat and "
                           "re-authenticate only")
        await super()._handle(command)

    async def _end(self, clean: bool) -> None:
        for channel in self.observing:
            self.edge.fanout.unsubscribe(channel, self)
        self.edge.watchers.forget(self)
        self._writer.cancel()
        if self._closing is not None:
            await self._closing

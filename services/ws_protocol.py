"""uvicorn's WebSocket protocol, with closes that a peer not reading cannot hold open.

A close frame goes out only after everything written before it, and asyncio's `transport.close()`
waits for the write buffer to drain: a peer that stops reading would keep the socket open, and its
buffers on this edge, for as long as it keeps the TCP connection alive (docs/reliability.md,
defect E). ASGI has no abort, so this protocol offers one as a scope extension, which the app calls
once a close bounded in time has failed (services/session.py); and once the app has returned, it
aborts a connection still not closed after uvicorn's close timeout.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

ABORT = "presence.abort"  # scope["extensions"][ABORT]["abort"]() drops the connection at once
LINGER_S = 2.0  # after uvicorn's close timeout, for the last bytes to leave before the abort


class AbortableWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The app's task is scheduled, not started: it sees the extension. A refused handshake has no scope.
        if (scope := getattr(self, "scope", None)) is not None:
            scope["extensions"][ABORT] = {"abort": self.transport.abort}

    async def run_asgi(self) -> None:
        await super().run_asgi()
        # uvicorn closes the transport now, or after its close timeout if a close frame went out unanswered.
        self.loop.call_later(self.close_timeout + LINGER_S, self._abort_if_open)

    def _abort_if_open(self) -> None:
        if not self.disconnected:
            self.transport.abort()

"""The client's token: the one given, or the latest a `token_provider` gave. With a provider, a fresh token is taken
when the edge refuses the one held (4401, a REST 401) or is about to expire it (`auth.expiring`)."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

TokenProvider = Callable[[], str | Awaitable[str]]


class Tokens:
    def __init__(self, token: str | None, provider: TokenProvider | None) -> None:
        self.current = token
        self.provider = provider

    async def fresh(self) -> str:
        """Takes a token from the provider; it is the current one from then on."""
        assert self.provider is not None
        token = self.provider()
        current = await token if inspect.isawaitable(token) else token
        self.current = current
        return current

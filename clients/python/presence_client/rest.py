"""REST calls with the client's credential, their errors raised as `PresenceError`: one user's presence and a
query of many users' for a `Client`; service.py makes a service's calls with `request`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import httpx

from presence_client.errors import PresenceError
from presence_client.records import QueryResult, UserPresence
from presence_client.tokens import Tokens


class Rest:
    """Reads with the client's current token; a 401 is tried once more with a fresh one when a provider can give it."""

    def __init__(self, http: httpx.AsyncClient, tokens: Tokens) -> None:
        self._http = http
        self._tokens = tokens

    async def user(self, user_id: str) -> UserPresence:
        return UserPresence.from_json(await self.request("GET", f"/realtime/users/{quote(user_id, safe='')}/presence"))

    async def query(self, user_ids: Iterable[str]) -> QueryResult:
        return QueryResult.from_json(await self.request("POST", "/realtime/presence/query",
                                                        {"user_ids": list(user_ids)}))

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      params: dict[str, str] | None = None) -> dict[str, Any]:
        """The answer's JSON body; an error answer raises `PresenceError` (a subclass by its code)."""
        for attempt in range(2):
            response = await self._http.request(method, path, json=body, params=params,
                                                headers={"Authorization": f"Bearer {self._tokens.current}"})
            if response.status_code == 401 and self._tokens.provider is not None and attempt == 0:
                await self._tokens.fresh()
                continue
            break
        try:
            answer: dict[str, Any] = response.json()
        except ValueError:  # not the edge's answer (a proxy's error page)
            answer = {"error": {"code": f"http.{response.status_code}", "message": response.text[:200]}}
        if response.is_error:
            raise PresenceError.from_body(answer.get("error", {}))
        return answer

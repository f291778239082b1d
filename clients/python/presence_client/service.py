"""A backend's client: REST calls with a service key (`psk.<name>.<secret>`, docs/api.md "Service keys").

A service reads any channel and any user, sets a user's status and metadata on its behalf, and forces a user
offline. To observe over the socket, a service key is a `connect` token like any other: its socket may
subscribe and watch (joining, typing and updating answer `auth.service_observer`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from presence_client.records import ChannelPage, ChannelSummary, Member, QueryResult, UserPresence
from presence_client.rest import Rest
from presence_client.tokens import Tokens

PAGE_LIMIT = 1000  # the edge's largest page: the fewest requests for a whole channel or channel list
QUERY_CHUNK = 500  # the most user ids the edge takes in one query


class ServiceClient:
    """`async with ServiceClient(url, service_key) as svc`: the edge at `url` (`http://...`), over httpx.
    An error answer raises `PresenceError` with its code (docs/errors.md), as the `Client`'s REST reads do."""

    def __init__(self, url: str, service_key: str, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=timeout_s, transport=transport)
        self._rest = Rest(self._http, Tokens(service_key, None))  # a service key never expires: nothing to renew

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # Reads

    async def channel(self, channel: str, status: str | None = None, include_metadata: bool = True) -> ChannelPage:
        """Every member of `channel` (only those in `status`, if given), following the pages to the end. The
        `seq`, `occupancy` and `typing` are the last page's: pages are read one after another, from views that
        may differ while the channel changes."""
        params = {"limit": str(PAGE_LIMIT), "include_metadata": "true" if include_metadata else "false"}
        if status is not None:
            params["status"] = status
        path = f"/realtime/channels/{quote(channel, safe='')}/presence"
        members: dict[str, Member] = {}
        cursor: str | None = None
        while True:
            page = ChannelPage.from_json(await self._rest.request("GET", path, params=_at(params, cursor)))
            members.update(page.members)
            if (cursor := page.next_cursor) is None:
                return replace(page, members=members)

    async def channels(self) -> dict[str, ChannelSummary]:
        """Every channel with members now, by channel id in id order, following the pages to the end."""
        found: dict[str, ChannelSummary] = {}
        cursor: str | None = None
        while True:
            page = await self._rest.request("GET", "/realtime/channels", params=_at({"limit": str(PAGE_LIMIT)}, cursor))
            found.update((c.channel, c) for c in map(ChannelSummary.from_json, page["channels"]))
            if (cursor := page.get("next_cursor")) is None:
                return found

    async def user(self, user_id: str) -> UserPresence:
        """One user's presence; `user.not_found` for a user the service holds nothing of."""
        return await self._rest.user(user_id)

    async def query(self, user_ids: Iterable[str]) -> QueryResult:
        """Any number of users' presence, asked 500 at a time; an id given twice is asked once."""
        ids = list(dict.fromkeys(user_ids))
        users: dict[str, UserPresence] = {}
        not_found: list[str] = []
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = await self._rest.query(ids[start:start + QUERY_CHUNK])
            users.update(chunk.users)
            not_found.extend(chunk.not_found)
        return QueryResult(users=users, not_found=tuple(not_found))

    # Acts on a user, each an event in the log that names the service

    async def set_presence(self, user_id: str, status: str | None = None, text: str | None = None,
                           emoji: str | None = None, expires_in_s: float | None = None,
                           metadata: dict[str, Any] | None = None, wait: bool = False) -> str:
        """Sets the user's status (its text, emoji and expiry; `""` clears a text) or metadata on its behalf;
        answers the event id once Kafka acknowledged it, or with `wait` once the processor applied it."""
        fields = {"status": status, "status_text": text, "status_emoji": emoji, "expires_in_s": expires_in_s,
                  "metadata": metadata}
        answer = await self._rest.request("POST", f"/realtime/users/{quote(user_id, safe='')}/presence",
                                          {k: v for k, v in fields.items() if v is not None},
                                          params={"wait": "true"} if wait else None)
        return str(answer["event_id"])

    async def force_offline(self, user_id: str, reason: str | None = None) -> str:
        """Ends every connection of the user (its sockets close with 4409); answers the event id once Kafka
        acknowledged it."""
        answer = await self._rest.request("POST", f"/realtime/users/{quote(user_id, safe='')}/presence/offline",
                                          {"reason": reason} if reason is not None else None)
        return str(answer["event_id"])


def _at(params: dict[str, str], cursor: str | None) -> dict[str, str]:
    """The query of the page after `cursor` (the first page without one)."""
    return params if cursor is None else {**params, "cursor": cursor}

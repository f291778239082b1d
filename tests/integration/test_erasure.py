"""Erasure against the real broker (`DELETE /realtime/users/{user_id}/presence`, docs/history.md#erasure):
the erased user leaves the channel its watcher sees, its socket is closed, its presence answers 404, and
no history read shows it any more: a channel at an instant before the erasure, its timeline, the replay
tables. `presence.erasures` holds it."""

from __future__ import annotations

import time
import uuid

import httpx

from schemas.codec import DecodeError, decode
from schemas.erasures import UserErasure
from schemas.events import EventBatch, UserErased
from schemas.topics import ERASURES, EVENTS
from streams.replay import Tables
from tests.integration.client import heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.log import read_all
from tests.integration.stack import Stack, eventually


def members(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 200, answer.text
    return {m["user_id"] for m in answer.json()["members"]}


async def test_an_erased_user_is_gone_from_presence_and_from_every_history_read(
    stack: Stack, connect, channel: str
) -> None:
    erased_id, watcher = f"erased-{uuid.uuid4().hex[:8]}", await connect(user("watcher"))
    leaver = await connect(erased_id, device="web")
    erased_headers = {"Authorization": f"Bearer {stack.token(erased_id)}"}
    async with heartbeating(watcher, leaver), \
            httpx.AsyncClient(base_url=stack.base_url, headers=erased_headers, timeout=30) as http:
        await watcher.send(type="subscribe", channel=channel)
        await leaver.join(channel)
        await leaver.send(type="update", metadata={"name": "Erin"}, status="busy", status_text="in a meeting")
        await watcher.next(diff_with(channel, "updates", erased_id), timeout_s=15)
        before = int(time.time() * 1000)
        assert erased_id in members(await http.get(f"/realtime/channels/{channel}/presence", params={"at": before}))
        presence = (await http.get(f"/realtime/users/{erased_id}/presence")).json()
        assert (presence["metadata"], presence["status_text"]) == ({"name": "Erin"}, "in a meeting")

        other = await http.delete(f"/realtime/users/{user('someone')}/presence")
        assert (other.status_code, other.json()["error"]["code"]) == (403, "presence.forbidden_user")
        after = len(watcher.frames)
        answer = await http.delete(f"/realtime/users/{erased_id}/presence")
        assert answer.status_code == 200, answer.text  # applied: this edge shows the user no more
        assert (await http.get(f"/realtime/users/{erased_id}/presence")).status_code == 404
        accepted = answer.json()
        assert accepted["user_id"] == erased_id and accepted["erased_at"] >= before

        # Live: the watcher sees the member leave, the socket is closed, the user is unknown.
        await watcher.next(diff_with(channel, "leaves", erased_id), after=after, timeout_s=15)
        assert erased_id not in watcher.members(channel)

        async def socket_closed() -> bool:
            return leaver._ws.close_code is not None

        await eventually(socket_closed, timeout_s=15)
        assert leaver._ws.close_code == 4408

        async def unknown() -> bool:
            return (await http.get(f"/realtime/users/{erased_id}/presence")).status_code == 404

        await eventually(unknown, timeout_s=15)

        # History: the erasure covers the past.
        assert erased_id not in members(await http.get(f"/realtime/channels/{channel}/presence",
                                                       params={"at": before}))
        timeline = await http.get(f"/realtime/users/{erased_id}/presence/timeline")
        assert (timeline.status_code, timeline.json()["error"]["code"]) == (404, "user.not_found"), timeline.text

    erasures = [decode(r.value, UserErasure) for r in await read_all(stack.bootstrap, ERASURES.name)
                if r.key == erased_id.encode()]
    assert erasures and erasures[-1] == UserErasure(user_id=erased_id, erased_at=accepted["erased_at"],
                                                    event_id=accepted["event_id"])

    # The replay tables (what `presence replay` folds) hold nothing of the user but the marker.
    tables = Tables()
    erased_in_log = False
    for record in sorted(await read_all(stack.bootstrap, EVENTS.name), key=lambda r: (r.partition, r.offset)):
        try:
            batch = decode(record.value, EventBatch)
        except DecodeError:  # another test's malformed record: the processor set it aside, as a replay does
            continue
        erased_in_log |= any(isinstance(e, UserErased) and e.user_id == erased_id for e in batch.events)
        tables.fold(record.partition, record.offset, batch)
    assert erased_in_log
    marker = tables.users[erased_id]
    assert marker.forgotten and marker.last_seen == accepted["erased_at"]
    assert (marker.metadata, marker.status_text, marker.connections, marker.channel_since) == ({}, None, (), {})
    assert all(erased_id not in {m.user_id for m in c.members} and erased_id not in c.typing
               for c in tables.channels.values())

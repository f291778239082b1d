"""A user's timeline over REST and the CLI (`GET /realtime/users/{user_id}/presence/timeline`), against the
real broker: two devices, updates over the WebSocket and REST, a drop the sweeper times out, a clean close.
Every expected time is the `at` of the user's events as the log holds them."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import httpx
import orjson

from schemas.events import (
    ChannelJoined,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionTimedOut,
    Event,
    PresenceUpdated,
)
from schemas.topics import partition_for
from services.representation import iso
from tests.integration.client import heartbeating
from tests.integration.log import logged_positions
from tests.integration.stack import PARTITIONS, ROOT, Stack, eventually

URL = "/realtime/users/{}/presence/timeline"


def one(events: list[Event], kind: type[Event], **fields: Any) -> Event:
    found = [e for e in events if isinstance(e, kind) and all(getattr(e, k) == v for k, v in fields.items())]
    assert len(found) == 1, (kind, fields, found)
    return found[0]


def ended(answer: dict[str, Any], connection_id: str) -> bool:
    return any(s["connection_id"] == connection_id and s["channel"] is None and s["end"] is not None
               for s in answer["sessions"])


async def test_the_timeline_lists_sessions_and_status_intervals_as_the_log_has_them(
    stack: Stack, connect, channel: str
) -> None:
    user = f"tl-{uuid.uuid4().hex[:8]}"
    web = await connect(user, device="web")
    ios = await connect(user, device="ios")
    c1, c2 = web.frames[0]["connection_id"], ios.frames[0]["connection_id"]
    headers = {"Authorization": f"Bearer {stack.token(user)}"}
    async with heartbeating(web, ios), httpx.AsyncClient(base_url=stack.base_url, headers=headers, timeout=30) as http:
        start = len(web.frames)
        await web.send(type="update", status="busy", ref="u1")  # at once: auto-away (4 s) never comes
        await web.next(lambda f: f["type"] == "ack" and f["ref"] == "u1", after=start)
        await web.join(channel)
        await ios.join(channel)
        rest = await http.post("/realtime/presence/update", json={"status": "dnd", "status_text": "Focus"})
        assert rest.status_code == 200, rest.text
        await ios.abort()  # dropped: the sweeper times it out after the reconnect grace

        async def timeline(**params: Any) -> dict[str, Any]:
            answer = await http.get(URL.format(user), params=params)
            assert answer.status_code == 200, answer.text
            return answer.json()  # type: ignore[no-any-return]

        await eventually(lambda: _check(timeline(), ended, c2), timeout_s=20, interval_s=0.5)
        await web.close()
        await eventually(lambda: _check(timeline(), ended, c1), timeout_s=20, interval_s=0.5)

        positions = [(offset, e) for offset, _, e in await logged_positions(stack.bootstrap) if e.user_id == user]
        events = [e for _, e in positions]
        opened1, opened2 = (one(events, ConnectionOpened, connection_id=c) for c in (c1, c2))
        joined1, joined2 = (one(events, ChannelJoined, connection_id=c, channel=channel) for c in (c1, c2))
        by_ws = one(events, PresenceUpdated, connection_id=c1, status="busy")
        by_rest = one(events, PresenceUpdated, status="dnd")
        swept = one(events, ConnectionTimedOut, connection_id=c2)
        closed = one(events, ConnectionClosed, connection_id=c1)
        assert by_rest.connection_id.startswith("rest:") and swept.edge_id != opened2.edge_id

        answer = await timeline(**{"from": opened1.at - 1_000, "to": iso(closed.at + 1_000)})
        later = await timeline(**{"from": closed.at + 1, "to": closed.at + 60_000})
        theirs = await http.get(URL.format("someone-else"))
        bad = await http.get(URL.format(user), params={"from": "yesterday"})
        too_long = await http.get(URL.format(user), params={"from": 0, "to": 32 * 24 * 3600 * 1000})

    assert answer["user_id"] == user and (answer["from"], answer["to"]) == (opened1.at - 1_000, closed.at + 1_000)
    assert sorted((s["connection_id"], s["channel"] or "", s["device"], s["start"], s["end"], s["end_reason"],
                   s["clipped"]) for s in answer["sessions"]) == sorted([
        (c1, "", "web", opened1.at, closed.at, "leave", False),
        (c1, channel, "web", joined1.at, closed.at, "leave", False),
        (c2, "", "ios", opened2.at, swept.at, "timeout", False),  # dropped, and not back within the grace
        (c2, channel, "ios", joined2.at, swept.at, "timeout", False),
    ])
    assert [(i["status"], i["status_text"], i["start"], i["end"], i["cause"], i["clipped"])
            for i in answer["statuses"]] == [
        ("online", None, opened1.at, by_ws.at, "connect", False),
        ("busy", None, by_ws.at, by_rest.at, "user", False),
        ("dnd", "Focus", by_rest.at, closed.at, "rest", False),
        ("offline", None, closed.at, None, "disconnect", True),  # still open: not wholly inside the window
    ]
    assert answer["sessions"][0]["start_iso"] == iso(answer["sessions"][0]["start"])
    last = max(offset for offset, e in positions if e is closed)
    assert answer["position"]["partition"] == partition_for(user, PARTITIONS)
    assert answer["position"]["offset"] > last
    assert later["sessions"] == [] and [(i["status"], i["clipped"]) for i in later["statuses"]] == [("offline", True)]
    assert (theirs.status_code, theirs.json()["error"]["code"]) == (403, "history.forbidden_user")
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "request.invalid")
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "request.invalid")

    # The CLI reads the same log into the same timeline.
    window = ["--from", str(opened1.at - 1_000), "--to", str(closed.at + 1_000)]
    printed = orjson.loads(await _cli(stack, "timeline", user, *window, "--json"))
    assert (printed["sessions"], printed["statuses"]) == (answer["sessions"], answer["statuses"])
    table = await _cli(stack, "timeline", user, *window)
    assert f"timeline of {user} from {iso(opened1.at - 1_000)}" in table
    assert any(c2 in line and "timeout" in line and "ios" in line for line in table.splitlines())
    assert any("dnd" in line and "Focus" in line and "rest" in line for line in table.splitlines())


async def _check(answer: Any, predicate: Any, *args: Any) -> bool:
    return bool(predicate(await answer, *args))


async def _cli(stack: Stack, *args: str) -> str:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap, "PRESENCE_PARTITIONS": str(PARTITIONS),
           "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.cli", *args, env=env, cwd=ROOT,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()

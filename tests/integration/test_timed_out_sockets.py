"""Defect B (docs/reliability.md): a connection that no longer counts as live is never left open and
ignored. The edge closes it with `connection.timed_out` (4408); the client reconnects and is online again."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import websockets

from tests.integration.client import Client, heartbeating
from tests.integration.frames import diff_with, user
from tests.integration.stack import TIMEOUT_S, Stack, eventually

CLOSE_CODE = 4408
SLACK_S = 2.5  # the edge checks every 0.1 s; the rest is for a shared, loaded machine


def closed_timed_out(client: Client) -> bool:
    return client._reader is not None and client._reader.done() and client._ws.close_code == CLOSE_CODE


def error_frames(client: Client, after: int = 0) -> list[dict[str, object]]:
    return [f for f in client.frames[after:] if f["type"] == "error"]


async def shown_online(stack: Stack, user_id: str) -> bool:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        answer = await http.get(f"/realtime/users/{user_id}/presence",
                                headers={"Authorization": f"Bearer {stack.token(user_id)}"})
    return answer.status_code == 200 and answer.json()["active"]


async def back_online(stack: Stack, connect, watcher: Client, channel: str, user_id: str) -> float:  # type: ignore[no-untyped-def]
    """Reconnects as `user_id` and joins; returns the seconds until the watcher sees the join."""
    started, after = time.monotonic(), len(watcher.frames)
    again = await connect(user_id)
    async with heartbeating(again):
        await again.join(channel)
        await watcher.next(diff_with(channel, "joins", user_id), after=after, timeout_s=15)
        assert await shown_online(stack, user_id)
    return time.monotonic() - started


async def test_a_silent_socket_is_closed_with_4408_at_its_timeout(stack: Stack, connect, channel: str) -> None:
    watcher, silent_id = await connect(user("watcher")), user("silent")
    async with heartbeating(watcher):
        await watcher.join(channel)
        silent = await connect(silent_id)
        await silent.join(channel)  # its last frame; it keeps reading
        last_frame = time.monotonic()
        await watcher.next(diff_with(channel, "joins", silent_id))
        await eventually(lambda: closed_timed_out(silent), timeout_s=TIMEOUT_S + 10)
        closed_after = time.monotonic() - last_frame
        [error] = error_frames(silent)
        assert (error["code"], error["retriable"]) == ("connection.timed_out", True)
        assert silent._ws.close_reason == "connection.timed_out"
        await watcher.next(diff_with(channel, "leaves", silent_id, reason="timeout"), timeout_s=TIMEOUT_S + 5)
        print(f"\nsilent socket closed {closed_after:.2f} s after its last frame (timeout {TIMEOUT_S} s)")
        assert TIMEOUT_S - 0.2 <= closed_after <= TIMEOUT_S + SLACK_S
        again_s = await back_online(stack, connect, watcher, channel, silent_id)
        print(f"online again {again_s:.2f} s after reconnecting")


async def test_a_half_open_client_that_wakes_up_is_closed_not_left_open_and_offline(
    stack: Stack, connect, channel: str
) -> None:
    watcher, sleeper_id = await connect(user("watcher")), user("sleeper")
    async with heartbeating(watcher):
        await watcher.join(channel)
        sleeper = await connect(sleeper_id)
        await sleeper.join(channel)
        await watcher.next(diff_with(channel, "joins", sleeper_id))
        sleeper._ws.transport.pause_reading()  # half-open: it neither reads nor sends
        asleep = time.monotonic()
        after = len(watcher.frames)
        await watcher.next(diff_with(channel, "leaves", sleeper_id, reason="timeout"), after=after,
                           timeout_s=TIMEOUT_S + 10)
        await asyncio.sleep(1)  # well past its timeout
        sleeper._ws.transport.resume_reading()  # wakes up on the same socket: heartbeats and updates
        with contextlib.suppress(websockets.ConnectionClosed):
            await sleeper.send(type="heartbeat")
            await sleeper.send(type="update", status="busy", ref="awake")
        woke = time.monotonic()
        await eventually(lambda: closed_timed_out(sleeper), timeout_s=10)
        print(f"\nhalf-open client asleep {woke - asleep:.2f} s, closed with {sleeper._ws.close_code} "
              f"{time.monotonic() - woke:.2f} s after it woke")
        assert [f["code"] for f in error_frames(sleeper)] == ["connection.timed_out"]
        assert not [f for f in sleeper.frames if f["type"] == "ack" and f.get("ref") == "awake"]
        assert not await shown_online(stack, sleeper_id)
        again_s = await back_online(stack, connect, watcher, channel, sleeper_id)
        print(f"online again {again_s:.2f} s after reconnecting")


async def test_a_timeout_lowered_over_rest_closes_the_silent_socket_at_the_lowered_timeout(
        stack: Stack, connect, channel: str) -> None:
    """A per-user timeout lowered over REST is in force at the processor: the edge reads it from the
    processor's state and ends the silent socket at it, not at the longer one this socket asked for."""
    watcher, subject_id = await connect(user("watcher")), user("subject")
    async with heartbeating(watcher):
        await watcher.join(channel)
        subject = await connect(subject_id)
        await subject.join(channel)
        await subject.send(type="update", timeout_s=30, ref="long")
        await subject.next(lambda f: f["type"] == "ack" and f.get("ref") == "long")
        await watcher.next(diff_with(channel, "joins", subject_id))
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            answer = await http.post("/realtime/presence/update?wait=true", json={"timeout_s": 1},
                                     headers={"Authorization": f"Bearer {stack.token(subject_id)}"})
        assert answer.status_code == 200, answer.text
        lowered = time.monotonic()  # the subject's last frame was before this: silent for more than 1 s soon
        await watcher.next(diff_with(channel, "leaves", subject_id, reason="timeout"), timeout_s=10)
        await eventually(lambda: closed_timed_out(subject), timeout_s=10)
        closed_after = time.monotonic() - lowered
        [error] = error_frames(subject)
        assert "presence timeout (1 s)" in str(error["message"])
        print(f"\nsilent socket closed {closed_after:.2f} s after the 1 s timeout was applied over REST "
              "(the socket's own: 30 s)")
        assert closed_after < 10
        again_s = await back_online(stack, connect, watcher, channel, subject_id)
        print(f"online again {again_s:.2f} s after reconnecting")

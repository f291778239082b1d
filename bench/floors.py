"""The two floors, measured in the same run as the service, as processes of their own.

- `python -m bench.floors relay BOOTSTRAP T0 T1 [T2 ...]`: the middle of the Kafka floor. A plain
  aiokafka consumer (fetch_max_wait_ms=500, like the worker and the edge) reads T0.. and produces
  every record of T(i) to T(i+1) (acks=all, linger 0). The load generator produces to T0 and
  consumes the last topic: with T0 T1 that is produce -> consume -> produce -> consume, the two-hop
  floor.
- `python -m bench.floors fanout PORT`: the fan-out floor, a bare Starlette WebSocket server on the
  same uvicorn settings as the edge (uvloop, httptools, websockets-sansio). `join` adds the socket
  to a channel; `update` is turned at once into a frame shaped like the edge's `presence.diff`
  and sent with `send_text` in a plain loop to every socket of the channel. No Kafka, no state.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime

import orjson

from services.broker import topic_partitions

FETCH_WAIT_MS = 500  # as the service: Kafka answers a waiting fetch as soon as data arrives


# -- Kafka relay ----------------------------------------------------------------------------------


async def relay(bootstrap: str, *topics: str) -> None:
    """Forward every record of topics[i] to topics[i + 1], same partition (one process, like the worker)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=FETCH_WAIT_MS, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    following = {topics[i]: topics[i + 1] for i in range(len(topics) - 1)}
    try:
        assignment = []
        for topic in following:
            partitions = await topic_partitions(consumer, topic)
            assert partitions, f"topic {topic} not found"
            assignment += partitions
        consumer.assign(assignment)
        print("relay ready", flush=True)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for tp, records in batches.items():
                out = following[tp.topic]
                for record in records:
                    await producer.send(out, record.value, key=record.key, partition=tp.partition)
    finally:
        await consumer.stop()
        await producer.stop()


# -- fan-out floor --------------------------------------------------------------------------------


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fanout_app():  # type: ignore[no-untyped-def]
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    channels: dict[str, list[WebSocket]] = defaultdict(list)
    seqs: dict[str, int] = defaultdict(int)

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        user = websocket.query_params.get("user", "?")
        joined: list[str] = []
        await websocket.send_text(orjson.dumps({"type": "welcome", "user_id": user}).decode())
        try:
            while True:
                text = await websocket.receive_text()
                body = orjson.loads(text)
                kind = body.get("type")
                if kind == "join":
                    channel = body["channel"]
                    channels[channel].append(websocket)
                    joined.append(channel)
                    await websocket.send_text(orjson.dumps({
                        "type": "presence.snapshot", "channel": channel, "seq": seqs[channel],
                        "occupancy": len(channels[channel]), "members": [], "typing": [], "ref": body.get("ref"),
                    }).decode())
                elif kind == "update":
                    for channel in joined:
                        seqs[channel] += 1
                        at = int(time.time() * 1000)
                        member = {
                            "user_id": user, "status": body.get("status"), "status_text": body.get("status_text"),
                            "status_emoji": None, "connections": 1, "devices": [], "joined_at": at,
                            "joined_at_iso": _iso(at), "last_seen": at, "last_seen_iso": _iso(at),
                            "metadata": {}, "status_metadata": None,
                        }
                        frame = orjson.dumps({
                            "type": "presence.diff", "channel": channel, "seq": seqs[channel], "at": at,
                            "at_iso": _iso(at), "occupancy": len(channels[channel]), "joins": [], "leaves": [],
                            "updates": [member], "typing": [],
                        }).decode()
                        for peer in tuple(channels[channel]):
                            with contextlib.suppress(Exception):  # a peer that went away
                                await peer.send_text(frame)
        except WebSocketDisconnect:
            pass
        finally:
            for channel in joined:
                if websocket in channels[channel]:
                    channels[channel].remove(websocket)

    return Starlette(routes=[WebSocketRoute("/ws", socket)])


def fanout(port: int) -> None:
    import uvicorn

    uvicorn.run(fanout_app(), host="127.0.0.1", port=port, ws="websockets-sansio", log_level="warning")


def main() -> None:
    command, *args = sys.argv[1:]
    if command == "relay":
        asyncio.run(relay(args[0], *args[1:]))
    elif command == "fanout":
        fanout(int(args[0]))
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()

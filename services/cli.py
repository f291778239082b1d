"""`presence`: run the stack or one part of it.

    presence up       Apache Kafka (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, one worker, one edge
    presence broker   the development broker alone, with the topics created
    presence worker   one processor worker (faust-streaming)
    presence edge     one edge (uvicorn)
    presence token    mint a development JWT

History, read from the log (docs/history.md):
    presence replay     rebuild the presence tables from the log; print their hash and the live tables'
    presence at         a channel's members at a past instant
    presence timeline   a user's sessions and status intervals
    presence analytics  concurrency, peaks, time in status and typing (docs/analytics.md)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from schemas.topics import DEFAULT_PARTITIONS
from services import analytics_command, history_command, replay_command, timeline_command
from services.auth import mint_token, parse_service_keys, service_key
from services.broker import RunningBroker, ensure_topics, start_broker
from services.kafka import KafkaNode, KafkaUnavailable

DEFAULT_BROKER_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
READY_TIMEOUT_S = 180.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="presence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="run the whole stack until Ctrl-C")
    broker = commands.add_parser("broker", help="run the development broker")
    for command in (up, broker):
        command.add_argument("--fresh", action="store_true",
                             help="delete the broker's state (PRESENCE_STATE_DIR) first: every topic starts empty")
    commands.add_parser("worker", help="run one processor worker")
    commands.add_parser("edge", help="run one edge")
    token = commands.add_parser("token", help="mint a development token (PRESENCE_JWT_SECRET signs it)")
    token.add_argument("user_id")
    token.add_argument("--channels", help="comma-separated channel ids or glob patterns; default: all")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds until it expires")
    for history in (replay_command, history_command, timeline_command, analytics_command):
        history.add_parser(commands)
    args = parser.parse_args(argv)
    builtin = {"up": _up, "broker": _broker, "worker": _worker, "edge": _edge, "token": _token}
    runs = {"replay": replay_command.run, "at": history_command.run, "timeline": timeline_command.run,
            "analytics": analytics_command.run}
    {**builtin, **runs}[args.command](args)


def _token(args: argparse.Namespace) -> None:
    secret = os.environ.get("PRESENCE_JWT_SECRET")
    if not secret:
        sys.exit("set PRESENCE_JWT_SECRET to the edge's secret")
    channels = args.channels.split(",") if args.channels else None
    audience, issuer = os.environ.get("PRESENCE_JWT_AUDIENCE"), os.environ.get("PRESENCE_JWT_ISSUER")
    print(mint_token(secret, args.user_id, channels, args.ttl, audience, issuer))


def _partitions() -> int:
    return int(os.environ.get("PRESENCE_PARTITIONS", DEFAULT_PARTITIONS))


def _dev_broker(env: dict[str, str], fresh: bool) -> RunningBroker:
    """The broker `presence up` and `presence broker` start: its log under PRESENCE_STATE_DIR, kept across runs."""
    state = Path(env.get("PRESENCE_STATE_DIR", ".presence")).resolve()
    if fresh:
        shutil.rmtree(state / "kafka", ignore_errors=True)
    try:
        return start_broker(
            env.get("PRESENCE_BROKER", "kafka"), state / "kafka",
            int(env.get("PRESENCE_BROKER_PORT", DEFAULT_BROKER_PORT)),
            int(env.get("PRESENCE_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT)),
            env.get("PRESENCE_KAFKA_HEAP", KafkaNode.heap),
        )
    except KafkaUnavailable as exc:
        sys.exit(str(exc))


def _broker(args: argparse.Namespace) -> None:
    broker = _dev_broker(dict(os.environ), args.fresh)
    ensure_topics(broker.bootstrap, _partitions())
    print(f"{broker.kind} broker on {broker.bootstrap}", flush=True)
    _wait_then_stop([broker.process])


def _worker(args: argparse.Namespace) -> None:
    os.execvp(sys.executable, [sys.executable, "-m", "streams"])


def _edge(args: argparse.Namespace) -> None:
    import asyncio
    import logging.config

    import uvicorn

    from services.admin import create_admin_app
    from services.app import create_app
    from services.logs import log_config
    from services.settings import EdgeSettings
    from services.ws_protocol import AbortableWebSocketProtocol

    settings = EdgeSettings.from_env()
    if problems := settings.unsafe():
        sys.exit("refusing to start with unsafe settings (set PRESENCE_DEV_MODE=true for development):\n  - "
                 + "\n  - ".join(problems))
    log_level = {"warn": "warning"}.get(level := os.environ.get("PRESENCE_LOG_LEVEL", "warning"), level)
    logging.config.dictConfig(log_config(settings.log_format, log_level))  # before the app logs anything
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        ws=AbortableWebSocketProtocol,
        ws_max_size=4 * settings.max_frame_bytes,  # beyond this uvicorn closes with 1009; below, we answer
        log_config=None,  # configured above
        log_level=log_level,
    )
    servers = [uvicorn.Server(config)]
    if settings.admin_port:
        admin = uvicorn.Config(create_admin_app(), host=settings.admin_host, port=settings.admin_port,
                               lifespan="off", log_config=None, log_level=log_level)
        servers.append(uvicorn.Server(admin))

    async def serve() -> None:
        # Each server catches SIGINT and SIGTERM, stops, then raises the signal again for the handler it
        # replaced, which is the other server's: one Ctrl-C stops both.
        await asyncio.gather(*(server.serve() for server in servers))

    # Ctrl-C is how `presence up` stops an edge, as uvicorn.run does
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve())


def _up(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    env.setdefault("PRESENCE_JWT_SECRET", secrets.token_urlsafe(32))
    env.setdefault("PRESENCE_DEV_MODE", "true")  # a laptop stack: one broker, memory tables
    # The dashboard reads every channel with a service key; a laptop stack makes one up, as its JWT secret.
    env.setdefault("PRESENCE_SERVICE_KEYS", f"dashboard={secrets.token_urlsafe(24)}")
    began = time.monotonic()
    children: list[subprocess.Popen[bytes]] = []
    if "KAFKA_BOOTSTRAP_SERVERS" not in env:
        broker = _dev_broker(env, args.fresh)
        children.append(broker.process)
        env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
        if not broker.idempotent_producer:  # Tansu refuses InitProducerId and answers fetches only when they time out
            env.setdefault("PRESENCE_IDEMPOTENT_PRODUCER", "false")
            env.setdefault("PRESENCE_FETCH_WAIT_MS", "5")
    try:
        ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], _partitions())
        command = [sys.executable, "-m", "services.cli"]
        children.append(subprocess.Popen([*command, "worker"], env=env))
        children.append(subprocess.Popen([*command, "edge"], env=env))
        port = env.get("PRESENCE_HTTP_PORT", "8080")
        _wait_until_ready(f"http://127.0.0.1:{port}", children)
    except BaseException:
        _stop(children)
        raise
    token = mint_token(env["PRESENCE_JWT_SECRET"], "dev-user", audience=env.get("PRESENCE_JWT_AUDIENCE"),
                       issuer=env.get("PRESENCE_JWT_ISSUER"))
    print(
        f"\nready in {time.monotonic() - began:.1f} s: presence flows (Ctrl-C stops everything)\n"
        f"broker     {env['KAFKA_BOOTSTRAP_SERVERS']}\n"
        f"edge       http://127.0.0.1:{port}  (WebSocket ws://127.0.0.1:{port}/realtime/ws?token=...)\n"
        f"openapi    http://127.0.0.1:{port}/openapi.json\n"
        f"dashboard  http://127.0.0.1:{port}/dashboard  (service key {_dev_service_key(env)})\n"
        f"jwt secret {env['PRESENCE_JWT_SECRET']}\n"
        f"dev token  {token}\n",
        flush=True,
    )
    _wait_then_stop(children)


def _dev_service_key(env: dict[str, str]) -> str:
    """The credential of the first service in PRESENCE_SERVICE_KEYS, to paste into the dashboard."""
    keys = parse_service_keys(env["PRESENCE_SERVICE_KEYS"])
    if not keys:
        return "none: PRESENCE_SERVICE_KEYS is empty"
    name, secret = next(iter(keys.items()))
    return service_key(name, secret)


def _wait_until_ready(base_url: str, children: list[subprocess.Popen[bytes]]) -> None:
    """Until the edge's /readyz answers 200: its read model caught up and the processor answering its probes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=1) as http:
        while time.monotonic() < deadline:
            if exited := [c.args for c in children if c.poll() is not None]:
                sys.exit(f"a process exited before the stack was ready: {exited}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    sys.exit(f"the stack was not ready within {READY_TIMEOUT_S:.0f} s (GET {base_url}/readyz)")


def _wait_then_stop(children: list[subprocess.Popen[bytes]]) -> None:
    # SIGTERM (a supervisor, `kill`) stops the children too, as Ctrl-C does; the broker runs in its own
    # session, so nothing but this function stops it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        sys.exit(f"a process exited: {[c.args for c in children if c.poll() is not None]}")
    except KeyboardInterrupt:
        pass
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
        signal.signal(sig, signal.SIG_IGN)
    for child in reversed(children):  # edge and worker first, the broker last
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    main()

"""`presence`: run the stack or one part of it.

    presence up       embedded broker (unless KAFKA_BOOTSTRAP_SERVERS is set), topics, one worker, one edge
    presence broker   the embedded Kafka-protocol broker alone, with the topics created
    presence worker   one processor worker (faust-streaming)
    presence edge     one edge (uvicorn)
    presence token    mint a development JWT
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time

from schemas.topics import DEFAULT_PARTITIONS
from services.auth import mint_token
from services.broker import ensure_topics, start_embedded_broker

DEFAULT_BROKER_PORT = 9092


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="presence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("up", help="run the whole stack until Ctrl-C")
    broker = commands.add_parser("broker", help="run the embedded broker")
    broker.add_argument("--port", type=int, default=DEFAULT_BROKER_PORT)
    commands.add_parser("worker", help="run one processor worker")
    commands.add_parser("edge", help="run one edge")
    token = commands.add_parser("token", help="mint a development token (PRESENCE_JWT_SECRET signs it)")
    token.add_argument("user_id")
    token.add_argument("--channels", help="comma-separated channel ids or glob patterns; default: all")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds until it expires")
    args = parser.parse_args(argv)
    {"up": _up, "broker": _broker, "worker": _worker, "edge": _edge, "token": _token}[args.command](args)


def _token(args: argparse.Namespace) -> None:
    secret = os.environ.get("PRESENCE_JWT_SECRET")
    if not secret:
        sys.exit("set PRESENCE_JWT_SECRET to the edge's secret")
    channels = args.channels.split(",") if args.channels else None
    audience, issuer = os.environ.get("PRESENCE_JWT_AUDIENCE"), os.environ.get("PRESENCE_JWT_ISSUER")
    print(mint_token(secret, args.user_id, channels, args.ttl, audience, issuer))


def _partitions() -> int:
    return int(os.environ.get("PRESENCE_PARTITIONS", DEFAULT_PARTITIONS))


def _broker(args: argparse.Namespace) -> None:
    process = start_embedded_broker(args.port)
    bootstrap = f"127.0.0.1:{args.port}"
    ensure_topics(bootstrap, _partitions())
    print(f"embedded broker on {bootstrap} (memory storage; stopping it loses every topic)", flush=True)
    _wait_then_stop([process])


def _worker(args: argparse.Namespace) -> None:
    os.execvp(sys.executable, [sys.executable, "-m", "streams"])


def _edge(args: argparse.Namespace) -> None:
    import uvicorn

    from services.app import create_app
    from services.log_redaction import redact_tokens
    from services.settings import EdgeSettings
    from services.ws_protocol import AbortableWebSocketProtocol

    settings = EdgeSettings.from_env()
    if problems := settings.unsafe():
        sys.exit("refusing to start with unsafe settings (set PRESENCE_DEV_MODE=true for development):\n  - "
                 + "\n  - ".join(problems))
    config = uvicorn.Config(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        ws=AbortableWebSocketProtocol,
        ws_max_size=4 * settings.max_frame_bytes,  # beyond this uvicorn closes with 1009; below, we answer
        access_log=False,  # request lines carry `?token=`: tokens stay out of logs
        log_level={"warn": "warning"}.get(level := os.environ.get("PRESENCE_LOG_LEVEL", "warning"), level),
    )
    redact_tokens("uvicorn.error")  # after Config, which (re)configures uvicorn's loggers
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how `presence up` stops an edge, as uvicorn.run does
        uvicorn.Server(config).run()


def _up(args: argparse.Namespace) -> None:
    env = dict(os.environ)
    env.setdefault("PRESENCE_JWT_SECRET", secrets.token_urlsafe(32))
    env.setdefault("PRESENCE_DEV_MODE", "true")  # a laptop stack: one broker, memory tables
    children: list[subprocess.Popen[bytes]] = []
    if "KAFKA_BOOTSTRAP_SERVERS" not in env:
        port = int(env.get("PRESENCE_BROKER_PORT", DEFAULT_BROKER_PORT))
        children.append(start_embedded_broker(port))
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
        env.setdefault("PRESENCE_IDEMPOTENT_PRODUCER", "false")  # the embedded broker refuses InitProducerId
    ensure_topics(env["KAFKA_BOOTSTRAP_SERVERS"], _partitions())
    command = [sys.executable, "-m", "services.cli"]
    children.append(subprocess.Popen([*command, "worker"], env=env))
    children.append(subprocess.Popen([*command, "edge"], env=env))
    port = env.get("PRESENCE_HTTP_PORT", "8080")
    token = mint_token(env["PRESENCE_JWT_SECRET"], "dev-user", audience=env.get("PRESENCE_JWT_AUDIENCE"),
                       issuer=env.get("PRESENCE_JWT_ISSUER"))
    print(
        f"\nbroker     {env['KAFKA_BOOTSTRAP_SERVERS']}\n"
        f"edge       http://127.0.0.1:{port}  (WebSocket ws://127.0.0.1:{port}/realtime/ws?token=...)\n"
        f"openapi    http://127.0.0.1:{port}/openapi.json\n"
        f"jwt secret {env['PRESENCE_JWT_SECRET']}\n"
        f"dev token  {token}\n"
        "(the worker needs ~10 s to join its group before presence flows; Ctrl-C stops everything)\n",
        flush=True,
    )
    _wait_then_stop(children)


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
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        for child in reversed(children):  # edge and worker first, the broker last
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()


if __name__ == "__main__":
    main()

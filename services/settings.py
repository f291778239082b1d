"""Edge settings, read once from `PRESENCE_*` environment variables (docs/configuration.md)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from starlette.config import Config

from schemas.topics import DEFAULT_PARTITIONS
from services.auth import parse_service_keys


@dataclass(frozen=True)
class EdgeSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    partitions: int = DEFAULT_PARTITIONS
    edge_id: str = "edge"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    jwt_secret: str = ""
    jwt_audience: str = ""
    jwt_issuer: str = ""
    jwks_file: str = ""  # RS256/ES256 public keys by `kid` (services/keys.py) ...
    jwks_url: str = ""  # ... or fetched from here
    open_channels: bool = True
    service_keys: dict[str, str] = field(default_factory=dict)  # service name -> secret (services/auth.py)
    allowed_origins: tuple[str, ...] = ()  # empty: any origin (development)
    cors_origins: tuple[str, ...] = ()  # empty: no CORS headers; these may open WebSockets too
    admin_host: str = "127.0.0.1"
    admin_port: int = 0  # 0: no admin port; /metrics on the main port (services/admin.py)
    metrics_token: str = ""
    log_format: str = "text"  # or "json" (services/logs.py)
    max_channels_per_connection: int = 100
    max_connections_per_user: int = 20
    max_frames_per_s: float = 20.0
    heartbeat_s: float = 10.0
    timeout_s: float = 30.0
    reconnect_grace_s: float = 15.0
    policy_file: str = ""
    batch_above_members: int = 100
    batch_window_ms: float = 50.0
    max_frame_bytes: int = 16 * 1024
    max_body_bytes: int = 16 * 1024
    max_metadata_bytes: int = 4 * 1024
    write_timeout_s: float = 5.0
    batch_linger_ms: float = 1.0
    fetch_wait_ms: int = 500
    idempotent_producer: bool = True
    probe_interval_s: float = 5.0
    probe_timeout_s: float = 10.0
    dev_mode: bool = False

    def unsafe(self) -> list[str]:
        """What would lose or duplicate acknowledged updates on a real cluster; empty in dev mode."""
        if self.dev_mode:
            return []
        problems = []
        if not self.idempotent_producer:
            problems.append("producer without idempotence (PRESENCE_IDEMPOTENT_PRODUCER=false)")
        if any(len(secret.strip()) < 32 for secret in self.jwt_secret.split(",") if secret.strip()):
            problems.append("a PRESENCE_JWT_SECRET secret shorter than 32 characters")
        if self.open_channels:
            problems.append("tokens without a `channels` claim may join every channel (PRESENCE_OPEN_CHANNELS)")
        return problems

    @property
    def websocket_origins(self) -> tuple[str, ...]:
        """Pages that may open a WebSocket: both allowlists, as a page allowed to call the REST API
        is one that opens sockets too; both empty: any origin (development)."""
        return self.allowed_origins + self.cors_origins

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)

    @property
    def grace_ms(self) -> int:
        return int(self.reconnect_grace_s * 1000)

    @classmethod
    def from_env(cls, environ: os._Environ[str] | dict[str, str] | None = None) -> EdgeSettings:
        config = Config(environ=environ if environ is not None else os.environ)
        http_port = config("PRESENCE_HTTP_PORT", cast=int, default=cls.http_port)
        # Stable across restarts, so a restarted edge knows its previous incarnation's connections
        # (services/previous_incarnation.py); two edges on one host listen on different ports.
        edge_id = config("PRESENCE_EDGE_ID", default=f"edge-{socket.gethostname()}-{http_port}")
        secret = config("PRESENCE_JWT_SECRET", default="")
        jwks_file, jwks_url = config("PRESENCE_JWKS_FILE", default=""), config("PRESENCE_JWKS_URL", default="")
        if not secret and not jwks_file and not jwks_url:
            raise SystemExit("none of PRESENCE_JWT_SECRET, PRESENCE_JWKS_FILE and PRESENCE_JWKS_URL is set; "
                             "`presence up` generates a secret for development")
        return cls(
            bootstrap_servers=config("KAFKA_BOOTSTRAP_SERVERS", default=cls.bootstrap_servers),
            partitions=config("PRESENCE_PARTITIONS", cast=int, default=cls.partitions),
            edge_id=edge_id,
            http_host=config("PRESENCE_HTTP_HOST", default=cls.http_host),
            http_port=http_port,
            jwt_secret=secret,
            jwt_audience=config("PRESENCE_JWT_AUDIENCE", default=""),
            jwt_issuer=config("PRESENCE_JWT_ISSUER", default=""),
            jwks_file=jwks_file,
            jwks_url=jwks_url,
            open_channels=config("PRESENCE_OPEN_CHANNELS", cast=bool, default=True),
            service_keys=_service_keys(config("PRESENCE_SERVICE_KEYS", default="")),
            allowed_origins=_origins(config("PRESENCE_ALLOWED_ORIGINS", default="")),
            cors_origins=_origins(config("PRESENCE_CORS_ORIGINS", default="")),
            admin_host=config("PRESENCE_ADMIN_HOST", default=cls.admin_host),
            admin_port=config("PRESENCE_ADMIN_PORT", cast=int, default=cls.admin_port),
            metrics_token=config("PRESENCE_METRICS_TOKEN", default=""),
            log_format=_log_format(config("PRESENCE_LOG_FORMAT", default=cls.log_format)),
            max_channels_per_connection=config(
                "PRESENCE_MAX_CHANNELS_PER_CONNECTION", cast=int, default=cls.max_channels_per_connection
            ),
            max_connections_per_user=config(
                "PRESENCE_MAX_CONNECTIONS_PER_USER", cast=int, default=cls.max_connections_per_user
            ),
            max_frames_per_s=config("PRESENCE_MAX_FRAMES_PER_S", cast=float, default=cls.max_frames_per_s),
            heartbeat_s=config("PRESENCE_HEARTBEAT_S", cast=float, default=cls.heartbeat_s),
            timeout_s=config("PRESENCE_TIMEOUT_S", cast=float, default=cls.timeout_s),
            reconnect_grace_s=config("PRESENCE_RECONNECT_GRACE_S", cast=float, default=cls.reconnect_grace_s),
            policy_file=config("PRESENCE_POLICY_FILE", default=""),
            batch_above_members=config("PRESENCE_BATCH_ABOVE_MEMBERS", cast=int, default=cls.batch_above_members),
            batch_window_ms=config("PRESENCE_BATCH_WINDOW_MS", cast=float, default=cls.batch_window_ms),
            max_frame_bytes=config("PRESENCE_MAX_FRAME_BYTES", cast=int, default=cls.max_frame_bytes),
            max_body_bytes=config("PRESENCE_MAX_BODY_BYTES", cast=int, default=cls.max_body_bytes),
            max_metadata_bytes=config("PRESENCE_MAX_METADATA_BYTES", cast=int, default=cls.max_metadata_bytes),
            write_timeout_s=config("PRESENCE_WRITE_TIMEOUT_S", cast=float, default=cls.write_timeout_s),
            batch_linger_ms=config("PRESENCE_BATCH_LINGER_MS", cast=float, default=cls.batch_linger_ms),
            fetch_wait_ms=config("PRESENCE_FETCH_WAIT_MS", cast=int, default=cls.fetch_wait_ms),
            idempotent_producer=config("PRESENCE_IDEMPOTENT_PRODUCER", cast=bool, default=True),
            probe_interval_s=config("PRESENCE_PROBE_INTERVAL_S", cast=float, default=cls.probe_interval_s),
            probe_timeout_s=config("PRESENCE_PROBE_TIMEOUT_S", cast=float, default=cls.probe_timeout_s),
            dev_mode=config("PRESENCE_DEV_MODE", cast=bool, default=False),
        )


def _origins(setting: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in setting.split(",") if o.strip())


def _log_format(setting: str) -> str:
    if setting not in ("text", "json"):
        raise SystemExit(f"PRESENCE_LOG_FORMAT must be text or json, not {setting!r}")
    return setting


def _service_keys(setting: str) -> dict[str, str]:
    try:
        return parse_service_keys(setting)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None

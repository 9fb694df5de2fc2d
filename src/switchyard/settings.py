"""Settings of a server process: from `switchyard serve` flags, else environment variables,
else defaults that run an embedded server on loopback with no other server needed."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_CONSOLE_LISTEN = "127.0.0.1:8080"
DEFAULT_DATABASE_URL = "sqlite:///data/switchyard.db"

TransportSecurity = Literal["plaintext", "tls", "mtls"]


@dataclass(frozen=True, slots=True)
class Settings:
    listen: str = DEFAULT_LISTEN
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    log_format: str = "console"
    log_level: str = "info"
    seed_demo: bool | None = None
    """Demo keys in a new database: None (the default) seeds the embedded SQLite database
    only, never a production Oracle one."""
    migrate: bool | None = None
    """Apply pending migrations at start-up: None (the default) does so for the embedded
    SQLite database only; on Oracle the schema is changed by `switchyard migrate`, run by
    whoever holds the DDL privileges, and a server finding it behind refuses to start."""
    shutdown_grace_seconds: float = 10.0
    metrics_listen: str | None = None
    """HOST:PORT to serve Prometheus metrics on (/metrics); none when unset."""
    poll_seconds: float = 1.0
    """How often the history is read for changes made elsewhere, however they announce
    themselves (Redis pub/sub wakes it at once; the poll is what makes it complete)."""
    watch_progress_seconds: float = 10.0
    """How long a watch stream stays silent before a progress message; a client that
    misses three in a row treats the stream as dead and reconnects."""
    watch_queue_revisions: int = 1024
    """How many revisions a watcher may fall behind before it is told to resume."""
    stream_stall_seconds: float = 10.0
    """How long gRPC may hold a stream's message (its client stopped reading and its
    HTTP/2 window is full) before the next change for that stream ends it as a slow
    consumer: WatchConfig and flagd's EventStream and SyncFlags."""
    cache_size: int = 10_000
    """How many resolved answers L1 keeps per process."""
    flag_flush_seconds: float = 10.0
    """How often the evaluation counts gathered in memory are written to the database."""
    rate_limit_default: str = "1000/3600"
    """What applies when no rate limit does: REQUESTS/SECONDS per caller, or `off`."""
    rate_limit_flush_seconds: float = 10.0
    """How often the trigger counts gathered in memory are written to the database."""
    flag_stale_days: float = 30.0
    """How long a flag that serves one value to everyone stays unchanged before ListFlags
    reports it as stale."""
    encryption_keys: str | None = field(default=None, repr=False)
    """Master keys for the values of is_encrypted keys, `KEY_ID:BASE64KEY` entries separated
    by commas, the current one first (`switchyard keys generate` makes one). Unset, they
    come from `encryption_key_file`, else (SQLite) a file beside the database made on
    first need; with neither on Oracle, marking a key is_encrypted is refused."""
    encryption_key_file: str | None = None
    """A file holding the master keys, one `KEY_ID:BASE64KEY` a line, current first."""
    tls_cert: str | None = None
    """PEM certificate chain the server presents (its own certificate first); with
    `tls_key`, the server speaks TLS only."""
    tls_key: str | None = None
    """PEM private key of `tls_cert`, unencrypted."""
    tls_client_ca: str | None = None
    """PEM CA certificates that sign client certificates: with it, mutual TLS, and a
    client without a certificate they signed cannot connect at all."""

    auth: bool = False
    """Whether callers must authenticate (a bearer token, or a client certificate with
    mutual TLS). Off, every caller acts as the local operator, and the server refuses
    to listen beyond loopback unless `insecure` says so."""
    insecure: bool = False
    """Listen beyond loopback without authentication, knowingly (like Redis's
    protected mode turned off)."""
    management_rate_limit: str = "300/60"
    """Management calls (writes, rollbacks, approvals, administration) each identity may
    make: REQUESTS/SECONDS, or `off`."""
    max_streams_per_identity: int = 100
    """Streams (watches, flagd event and sync streams) one identity may hold open."""
    max_message_bytes: int = 4 * 1024 * 1024
    """The largest request the server accepts."""
    console_listen: str | None = DEFAULT_CONSOLE_LISTEN
    """HOST:PORT to serve the web console on (HTTPS with `tls_cert`); None (`off`) serves
    none."""
    console_insecure_http: bool = False
    """Serve the console beyond loopback over plain HTTP although callers sign in with
    tokens, knowingly (behind a proxy that terminates TLS, say)."""
    console_session_key: str | None = field(default=None, repr=False)
    """Base64 of 32 random bytes that seal the console's session cookies. Give every
    replica behind one console address the same key, so that a session outlives a restart
    and a move between replicas; unset, each start makes its own and signs everyone out."""
    otlp_endpoint: str | None = None
    """Where to export traces over OTLP/gRPC (`http://collector:4317`, `https://` for
    TLS); none, the default, traces nothing. From SWITCHYARD_OTLP_ENDPOINT, else the
    standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT."""

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite:")

    @property
    def migrates(self) -> bool:
        """Whether start-up applies pending migrations."""
        return self.embedded if self.migrate is None else self.migrate

    @property
    def seeds_demo(self) -> bool:
        """Whether a new database gets the demo keys."""
        return self.embedded if self.seed_demo is None else self.seed_demo

    def transport_security(self) -> TransportSecurity:
        """How the server listens: in plaintext (the default), with TLS (`tls_cert` and
        `tls_key`), or with mutual TLS (`tls_client_ca` too). Raises ValueError for a
        half-given TLS configuration rather than guess: serving plaintext when a
        certificate was meant is a security hole, not a default."""
        if self.tls_cert and not self.tls_key:
            raise ValueError(
                "a TLS certificate (--tls-cert / SWITCHYARD_TLS_CERT) needs its private key: "
                "give --tls-key / SWITCHYARD_TLS_KEY too"
            )
        if self.tls_key and not self.tls_cert:
            raise ValueError(
                "a TLS private key (--tls-key / SWITCHYARD_TLS_KEY) needs its certificate: "
                "give --tls-cert / SWITCHYARD_TLS_CERT too"
            )
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError(
                "mutual TLS (--tls-client-ca / SWITCHYARD_TLS_CLIENT_CA) needs the server's "
                "own certificate and key: give --tls-cert and --tls-key too"
            )
        if not self.tls_cert:
            return "plaintext"
        return "mtls" if self.tls_client_ca else "tls"

    @property
    def authenticates(self) -> bool:
        """Whether callers must prove who they are: `auth` on, or mutual TLS (a client
        CA), whose certificates name their users."""
        return self.auth or bool(self.tls_client_ca)

    def check_exposure(self) -> None:
        """Raises ValueError when the server (or its console) would listen beyond loopback
        with nobody having to authenticate, and `insecure` does not say that is meant; or
        when the console would take sign-in tokens beyond loopback over plain HTTP, and
        `console_insecure_http` does not say that is meant."""
        console = self.console_listen
        if (
            console is not None
            and not is_loopback(console)
            and self.authenticates
            and not self.tls_cert
            and not self.console_insecure_http
        ):
            raise ValueError(
                f"refusing to serve the web console on {console} over plain HTTP: signing "
                "in sends a token, which would cross the network in clear. Give the server "
                "a certificate (--tls-cert and --tls-key: the console then serves HTTPS), "
                "serve the console on 127.0.0.1 (or --console-listen off), or pass "
                "--console-insecure-http if a proxy in front terminates TLS"
            )
        if self.authenticates or self.insecure:
            return
        for name, listen in (("--listen", self.listen), ("--console-listen", self.console_listen)):
            if listen is None or is_loopback(listen):
                continue
            raise ValueError(
                f"refusing to listen on {listen} without authentication ({name}): anyone "
                "who can reach it could change configuration. Turn authentication on "
                "(--auth, and create a token with `switchyard token create`), listen on "
                "127.0.0.1, or pass --insecure to accept the risk"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            listen=env.get("SWITCHYARD_LISTEN", DEFAULT_LISTEN),
            database_url=env.get("SWITCHYARD_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("SWITCHYARD_REDIS_URL") or None,
            log_format=env.get("SWITCHYARD_LOG_FORMAT", "console"),
            log_level=env.get("SWITCHYARD_LOG_LEVEL", "info"),
            seed_demo=_flag(env.get("SWITCHYARD_SEED_DEMO")),
            migrate=_flag(env.get("SWITCHYARD_MIGRATE")),
            metrics_listen=env.get("SWITCHYARD_METRICS_LISTEN") or None,
            poll_seconds=_number(env, "SWITCHYARD_POLL_SECONDS", 1.0),
            watch_progress_seconds=_number(env, "SWITCHYARD_WATCH_PROGRESS_SECONDS", 10.0),
            watch_queue_revisions=int(_number(env, "SWITCHYARD_WATCH_QUEUE_REVISIONS", 1024)),
            stream_stall_seconds=_number(env, "SWITCHYARD_STREAM_STALL_SECONDS", 10.0),
            cache_size=int(_number(env, "SWITCHYARD_CACHE_SIZE", 10_000)),
            flag_flush_seconds=_number(env, "SWITCHYARD_FLAG_FLUSH_SECONDS", 10.0),
            flag_stale_days=_number(env, "SWITCHYARD_FLAG_STALE_DAYS", 30.0),
            rate_limit_default=env.get("SWITCHYARD_RATE_LIMIT_DEFAULT", "1000/3600"),
            rate_limit_flush_seconds=_number(env, "SWITCHYARD_RATE_LIMIT_FLUSH_SECONDS", 10.0),
            encryption_keys=env.get("SWITCHYARD_ENCRYPTION_KEYS") or None,
            encryption_key_file=env.get("SWITCHYARD_ENCRYPTION_KEY_FILE") or None,
            tls_cert=env.get("SWITCHYARD_TLS_CERT") or None,
            tls_key=env.get("SWITCHYARD_TLS_KEY") or None,
            tls_client_ca=env.get("SWITCHYARD_TLS_CLIENT_CA") or None,
            auth=bool(_flag(env.get("SWITCHYARD_AUTH"))),
            insecure=bool(_flag(env.get("SWITCHYARD_INSECURE"))),
            console_insecure_http=bool(_flag(env.get("SWITCHYARD_CONSOLE_INSECURE_HTTP"))),
            management_rate_limit=env.get("SWITCHYARD_MANAGEMENT_RATE_LIMIT", "300/60"),
            max_streams_per_identity=int(_number(env, "SWITCHYARD_MAX_STREAMS_PER_IDENTITY", 100)),
            max_message_bytes=int(_number(env, "SWITCHYARD_MAX_MESSAGE_BYTES", 4 * 1024 * 1024)),
            console_listen=console_listen(
                env.get("SWITCHYARD_CONSOLE_LISTEN", DEFAULT_CONSOLE_LISTEN)
            ),
            console_session_key=env.get("SWITCHYARD_CONSOLE_SESSION_KEY") or None,
            otlp_endpoint=env.get("SWITCHYARD_OTLP_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or None,
        )


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {text!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive; got {text!r}")
    return number


def console_listen(text: str) -> str | None:
    """The console's HOST:PORT from a flag or variable; None for `off` (or empty)."""
    text = text.strip()
    return None if text.lower() in {"", "off", "none", "0", "false", "no"} else text


def is_loopback(listen: str) -> bool:
    """Whether HOST:PORT names a loopback address (a name that resolves elsewhere, and the
    wildcard, do not)."""
    host = listen.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(text: str | None) -> bool | None:
    if text is None or not text.strip():
        return None
    return text.strip().lower() not in {"0", "false", "no", "off"}


__all__ = [
    "DEFAULT_CONSOLE_LISTEN",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LISTEN",
    "Settings",
    "TransportSecurity",
    "console_listen",
    "is_loopback",
]

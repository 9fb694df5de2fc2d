"""Settings of a server process: from `switchyard serve` flags, else environment variables,
else defaults that run an embedded server on loopback with no other server needed."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_LISTEN = "127.0.0.1:50051"
DEFAULT_DATABASE_URL = "sqlite:///data/switchyard.db"


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
            cache_size=int(_number(env, "SWITCHYARD_CACHE_SIZE", 10_000)),
            flag_flush_seconds=_number(env, "SWITCHYARD_FLAG_FLUSH_SECONDS", 10.0),
            flag_stale_days=_number(env, "SWITCHYARD_FLAG_STALE_DAYS", 30.0),
            rate_limit_default=env.get("SWITCHYARD_RATE_LIMIT_DEFAULT", "1000/3600"),
            rate_limit_flush_seconds=_number(env, "SWITCHYARD_RATE_LIMIT_FLUSH_SECONDS", 10.0),
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


def _flag(text: str | None) -> bool | None:
    if text is None or not text.strip():
        return None
    return text.strip().lower() not in {"0", "false", "no", "off"}


__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_LISTEN", "Settings"]

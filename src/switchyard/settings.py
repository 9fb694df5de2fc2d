"""Settings of a server process: from `switchyard serve` flags, else environment variables,
else defaults that run an embedded server on loopback with no other server needed."""

from __future__ import annotations

import os
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
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            listen=env.get("SWITCHYARD_LISTEN", DEFAULT_LISTEN),
            database_url=env.get("SWITCHYARD_DATABASE_URL", DEFAULT_DATABASE_URL),
            redis_url=env.get("SWITCHYARD_REDIS_URL") or None,
            log_format=env.get("SWITCHYARD_LOG_FORMAT", "console"),
            log_level=env.get("SWITCHYARD_LOG_LEVEL", "info"),
            seed_demo=_flag(env.get("SWITCHYARD_SEED_DEMO")),
            migrate=_flag(env.get("SWITCHYARD_MIGRATE")),
        )


def _flag(text: str | None) -> bool | None:
    if text is None or not text.strip():
        return None
    return text.strip().lower() not in {"0", "false", "no", "off"}


__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_LISTEN", "Settings"]

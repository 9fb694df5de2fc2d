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
    shutdown_grace_seconds: float = 10.0

    @property
    def seeds_demo(self) -> bool:
        """Whether a new database gets the demo keys."""
        if self.seed_demo is not None:
            return self.seed_demo
        return self.database_url.startswith("sqlite:")

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
        )


def _flag(text: str | None) -> bool | None:
    if text is None or not text.strip():
        return None
    return text.strip().lower() not in {"0", "false", "no", "off"}


__all__ = ["DEFAULT_DATABASE_URL", "DEFAULT_LISTEN", "Settings"]

"""Storage: repositories over raw SQL for SQLite (embedded) and Oracle (production).

The only package with SQL in it. `open_store` picks the backend from a database URL;
`migrate` brings its schema up to date.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from switchyard.domain.errors import InvalidArgument
from switchyard.store.base import SqlStore
from switchyard.store.keyring import KeySource, key_source
from switchyard.store.migrations import migrate, pending
from switchyard.store.sealing import Sealer

SQLITE_PREFIX = "sqlite:///"
ORACLE_PREFIX = "oracle://"


def sqlite_path(url: str) -> Path:
    """`sqlite:///data/x.db` is relative to the working directory, `sqlite:////var/x.db`
    absolute. A query (`?busy_timeout_ms=2000`) is not part of the path."""
    return Path(url.removeprefix(SQLITE_PREFIX).partition("?")[0])


def _sqlite_busy_timeout(url: str) -> int:
    """How long a writer waits for another process's write lock before UNAVAILABLE:
    `?busy_timeout_ms=N` on the URL, else the default."""
    from switchyard.store.sqlite import BUSY_TIMEOUT_MS

    query = parse_qs(url.partition("?")[2])
    raw = query.get("busy_timeout_ms", [str(BUSY_TIMEOUT_MS)])[-1]
    if not raw.isdigit():
        raise InvalidArgument.field("database_url", "busy_timeout_ms must be a whole number")
    return int(raw)


async def open_store(url: str, *, keys: KeySource | None = None) -> SqlStore:
    """Opens the database a URL names. `keys` is where the master keys of encrypted
    values come from; by default, for SQLite, a key file beside the database made on
    first need (`store.keyring.key_source`), and none for Oracle. Raises InvalidArgument
    for a URL of no known kind and Unavailable when the database cannot be reached."""
    if url.startswith(SQLITE_PREFIX) and len(url) > len(SQLITE_PREFIX):
        from switchyard.store.sqlite import SqlitePool

        path = sqlite_path(url)
        if keys is None:
            keys = key_source(keys=None, key_file=None, sqlite_file=path)
        return SqlStore(
            await SqlitePool.open(path, busy_timeout_ms=_sqlite_busy_timeout(url)),
            Sealer(keys),
        )
    if url.startswith(ORACLE_PREFIX):
        from switchyard.store.oracle import OraclePool

        return SqlStore(await OraclePool.open(url), Sealer(keys))
    raise InvalidArgument.field(
        "database_url",
        f"{redact(url)!r} is not a database URL: use sqlite:///path/to/file.db "
        "or oracle://user:password@host:1521/service",
    )


def redact(url: str) -> str:
    """A database URL fit for a log line or an error: user and password hidden."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


__all__ = [
    "ORACLE_PREFIX",
    "SQLITE_PREFIX",
    "SqlStore",
    "migrate",
    "open_store",
    "pending",
    "redact",
    "sqlite_path",
]

"""The production backend: Oracle Database (19c or later) through python-oracledb in thin
mode, with an async connection pool. No Oracle client libraries are needed.

Reads run in `SET TRANSACTION READ ONLY`, which gives every statement of the read the same
snapshot (Oracle's default is a snapshot per statement). Writes lock the revision row
first (`FOR UPDATE WAIT`), which serialises writers across every replica.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

import oracledb

from switchyard.domain.errors import InvalidArgument
from switchyard.store.dialect import ORACLE, Dialect
from switchyard.store.errors import adapt_errors
from switchyard.store.revisions import LOCK_REVISION
from switchyard.store.session import Binds, Lists, Row, SessionBase, prepare
from switchyard.store.sql import Sql

DEFAULT_POOL_SIZE = 8
CALL_TIMEOUT_MS = 10_000
ACQUIRE_TIMEOUT_MS = 5_000
# Strings longer than this bind as CLOB (ORA-01461 otherwise, for values over 32 KiB).
_CLOB_BIND_THRESHOLD = 4_000

READ_ONLY = Sql("begin_read_only", "SET TRANSACTION READ ONLY")
# Keyset paging compares keys with `>` and sorts them with ORDER BY: both must be binary
# whatever the database's NLS defaults are.
BINARY_SESSION = Sql("binary_session", "ALTER SESSION SET NLS_SORT = BINARY NLS_COMP = BINARY")


@dataclass(frozen=True, slots=True)
class OracleTarget:
    """Where to connect, from `oracle://user:password@host:port/service`."""

    user: str
    password: str
    dsn: str

    @classmethod
    def parse(cls, url: str) -> OracleTarget:
        parts = urlsplit(url)
        service = parts.path.lstrip("/")
        if parts.scheme != "oracle" or not parts.hostname or not parts.username or not service:
            raise InvalidArgument.field(
                "database_url",
                "an Oracle URL looks like oracle://user:password@host:1521/service",
            )
        return cls(
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            dsn=f"{parts.hostname}:{parts.port or 1521}/{service}",
        )


class OracleConnection(SessionBase):
    dialect: Dialect = ORACLE

    def __init__(self, connection: oracledb.AsyncConnection) -> None:
        self.raw = connection

    async def fetch_all(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> list[Row]:
        text, prepared = prepare(self.dialect, sql, binds, lists)
        with adapt_errors(self.dialect):
            cursor = self.raw.cursor()
            try:
                _input_sizes(cursor, prepared)
                await cursor.execute(text, prepared, fetch_lobs=False)
                names = [column[0].lower() for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
            finally:
                cursor.close()

    async def execute(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> int:
        text, prepared = prepare(self.dialect, sql, binds, lists)
        with adapt_errors(self.dialect):
            cursor = self.raw.cursor()
            try:
                _input_sizes(cursor, prepared)
                await cursor.execute(text, prepared)
                return int(cursor.rowcount)
            finally:
                cursor.close()

    async def begin_read(self) -> None:
        await self.execute(READ_ONLY)

    async def begin_write(self) -> None:
        await self.fetch_all(LOCK_REVISION)

    async def commit(self) -> None:
        with adapt_errors(self.dialect):
            await self.raw.commit()

    async def rollback(self) -> None:
        with adapt_errors(self.dialect):
            await self.raw.rollback()

    async def execute_ddl(self, statement: str) -> None:
        with adapt_errors(self.dialect):
            cursor = self.raw.cursor()
            try:
                await cursor.execute(statement)
            finally:
                cursor.close()


def _input_sizes(cursor: Any, binds: dict[str, object]) -> None:
    """Bind types the driver would not choose by itself: long text as CLOB, and
    datetimes as TIMESTAMP (not DATE, which would drop the microseconds)."""
    sizes: dict[str, object] = {}
    for name, value in binds.items():
        if isinstance(value, str) and len(value) > _CLOB_BIND_THRESHOLD:
            sizes[name] = oracledb.DB_TYPE_CLOB
        elif isinstance(value, datetime):
            sizes[name] = oracledb.DB_TYPE_TIMESTAMP
    if sizes:
        cursor.setinputsizes(**sizes)


class OraclePool:
    dialect: Dialect = ORACLE

    def __init__(self, pool: oracledb.AsyncConnectionPool) -> None:
        self._pool = pool
        # Database sessions (id, serial) already set up. The pool wraps a pooled session
        # in a new connection object on every acquire, so objects cannot be tracked.
        self._prepared: set[tuple[int, int]] = set()
        self._in_use = {"read": 0, "write": 0}

    @classmethod
    async def open(cls, url: str, *, size: int = DEFAULT_POOL_SIZE) -> OraclePool:
        """A fixed-size pool (Oracle's advice: min == max), checked by taking one
        connection now so that a wrong address fails at start-up, not on the first call.
        Raises Unavailable when the database cannot be reached."""
        target = OracleTarget.parse(url)
        with adapt_errors(ORACLE):
            pool = oracledb.create_pool_async(
                user=target.user,
                password=target.password,
                dsn=target.dsn,
                min=size,
                max=size,
                increment=0,
                getmode=oracledb.POOL_GETMODE_TIMEDWAIT,
                wait_timeout=ACQUIRE_TIMEOUT_MS,
            )
        opened = cls(pool)
        try:
            connection = await opened.acquire(write=False)
            await opened.release(connection, write=False)
        except BaseException:
            await opened.close()
            raise
        return opened

    async def acquire(self, *, write: bool) -> OracleConnection:
        with adapt_errors(ORACLE):
            raw = await self._pool.acquire()
        connection = OracleConnection(raw)
        raw.call_timeout = CALL_TIMEOUT_MS
        session = (raw.session_id, raw.serial_num)
        if session not in self._prepared:
            try:
                await connection.execute(BINARY_SESSION)
            except BaseException:
                await self._pool.release(raw)
                raise
            self._prepared.add(session)
        self._in_use["write" if write else "read"] += 1
        return connection

    async def release(self, connection: object, *, write: bool) -> None:
        assert isinstance(connection, OracleConnection)
        self._in_use["write" if write else "read"] -= 1
        with adapt_errors(ORACLE):
            await self._pool.release(connection.raw)

    def usage(self) -> dict[str, tuple[int, int, int]]:
        """Per kind of use ("read", "write"): connections in use; then the one pool's idle
        connections and size, the same for both."""
        idle = max(0, self._pool.opened - self._pool.busy)
        size = self._pool.max
        return {kind: (used, idle, size) for kind, used in self._in_use.items()}

    async def close(self) -> None:
        with adapt_errors(ORACLE):
            await self._pool.close(force=True)


__all__ = ["OracleConnection", "OraclePool", "OracleTarget"]

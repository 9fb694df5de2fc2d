"""The embedded backend: one SQLite file in WAL mode.

Readers each have a connection of their own and see a snapshot for the length of their
transaction. There is one writer connection; writers queue for it in process, and
`BEGIN IMMEDIATE` takes the database's write lock so that several server processes may
share one file (waiting up to `BUSY_TIMEOUT_MS` for each other).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, cast

import aiosqlite

from switchyard.domain.errors import Unavailable
from switchyard.store.dialect import SQLITE, Dialect
from switchyard.store.errors import adapt_errors
from switchyard.store.session import Binds, Lists, Row, SessionBase, prepare
from switchyard.store.sql import Sql

BUSY_TIMEOUT_MS = 5_000
DEFAULT_READERS = 4


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> Row:
    return {column[0]: value for column, value in zip(cursor.description, values, strict=True)}


class SqliteConnection(SessionBase):
    dialect: Dialect = SQLITE

    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch_all(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> list[Row]:
        text, prepared = prepare(self.dialect, sql, binds, lists)
        with adapt_errors(self.dialect):
            rows = await self._connection.execute_fetchall(text, prepared)
        return cast(list[Row], list(rows))

    async def execute(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> int:
        text, prepared = prepare(self.dialect, sql, binds, lists)
        with adapt_errors(self.dialect):
            async with self._connection.execute(text, prepared) as cursor:
                return int(cursor.rowcount)

    async def begin_read(self) -> None:
        await self._plain("BEGIN")

    async def begin_write(self) -> None:
        await self._plain("BEGIN IMMEDIATE")

    async def commit(self) -> None:
        await self._plain("COMMIT")

    async def rollback(self) -> None:
        # Always sent, never decided by `in_transaction` beforehand: that flag is read at
        # once, while a BEGIN whose caller was cancelled (a client gone while the write
        # waited for the lock) is still queued on the connection's thread and runs
        # later. A ROLLBACK queued behind it ends whatever it opens, so the connection
        # goes back to its pool with no transaction left open.
        try:
            await self._plain("ROLLBACK")
        except Exception:
            if self._connection.in_transaction:
                raise
            # No transaction was open: nothing to undo.

    async def execute_ddl(self, statement: str) -> None:
        await self._plain(statement)

    async def close(self) -> None:
        await self._connection.close()

    async def _plain(self, statement: str) -> None:
        with adapt_errors(self.dialect):
            await self._connection.execute(statement)


async def _connect(path: Path, *, read_only: bool, busy_timeout_ms: int) -> SqliteConnection:
    with adapt_errors(SQLITE):
        connection = await aiosqlite.connect(path, isolation_level=None)
    try:
        connection.row_factory = _dict_row  # type: ignore[assignment]
        with adapt_errors(SQLITE):
            await connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            await connection.execute("PRAGMA foreign_keys = ON")
            if read_only:
                await connection.execute("PRAGMA query_only = ON")
            else:
                await connection.execute("PRAGMA journal_mode = WAL")
                # Every acknowledged write survives a power cut; writes are rare enough.
                await connection.execute("PRAGMA synchronous = FULL")
    except BaseException:
        await connection.close()
        raise
    return SqliteConnection(connection)


class SqlitePool:
    dialect: Dialect = SQLITE

    def __init__(self, writer: SqliteConnection, readers: list[SqliteConnection]) -> None:
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._all_readers = readers
        self._readers: asyncio.Queue[SqliteConnection] = asyncio.Queue()
        for reader in readers:
            self._readers.put_nowait(reader)

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        readers: int = DEFAULT_READERS,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
    ) -> SqlitePool:
        """Opens (creating it and its directory if needed) the database at `path`.
        Raises Unavailable when the file cannot be opened."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise Unavailable(
                f"cannot create the database's directory {path.parent}: {error.strerror}"
            ) from error
        writer = await _connect(path, read_only=False, busy_timeout_ms=busy_timeout_ms)
        opened: list[SqliteConnection] = []
        try:
            for _ in range(readers):
                opened.append(await _connect(path, read_only=True, busy_timeout_ms=busy_timeout_ms))
        except BaseException:
            for connection in [writer, *opened]:
                await connection.close()
            raise
        return cls(writer, opened)

    async def acquire(self, *, write: bool) -> SqliteConnection:
        if write:
            await self._write_lock.acquire()
            return self._writer
        return await self._readers.get()

    async def release(self, connection: object, *, write: bool) -> None:
        if write:
            self._write_lock.release()
        else:
            assert isinstance(connection, SqliteConnection)
            self._readers.put_nowait(connection)

    def usage(self) -> dict[str, tuple[int, int, int]]:
        """Per pool ("read", "write"): connections in use, idle, and the most it holds."""
        writing = 1 if self._write_lock.locked() else 0
        readers, idle = len(self._all_readers), self._readers.qsize()
        return {"read": (readers - idle, idle, readers), "write": (writing, 1 - writing, 1)}

    async def close(self) -> None:
        for connection in [self._writer, *self._all_readers]:
            await connection.close()


__all__ = ["SqliteConnection", "SqlitePool"]

"""The store both backends share: snapshots to read, serialised transactions to write.

A backend supplies connections (`Pool`); everything else, from the repositories to the
commit protocol, is written once here.

A batch (`SqlStore.batch`) is one transaction that the writes made inside it join: each
service write opens its transaction as usual and finds the batch's instead, so many
writes commit under one revision, all or none. A savepoint around each write lets a
refused write be undone alone, so a dry run can report every refusal at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Protocol

import structlog

from switchyard.domain.models import HistoryEntry
from switchyard.store.access import SqlChangeRequestRepository, SqlTokenRepository
from switchyard.store.configs import SqlConfigRepository
from switchyard.store.dialect import Dialect
from switchyard.store.environments import SqlEnvironmentRepository
from switchyard.store.flags import SqlFlagRepository
from switchyard.store.history import SqlHistoryRepository
from switchyard.store.integrity import SqlIntegrityRepository
from switchyard.store.limits import SqlRateLimitRepository
from switchyard.store.overrides import SqlOverrideRepository
from switchyard.store.revisions import SqlRevisionCounter
from switchyard.store.sealing import Sealer
from switchyard.store.session import Session
from switchyard.store.sql import Sql
from switchyard.store.templates import SqlTemplateRepository
from switchyard.store.users import SqlUserRepository
from switchyard.store.windows import SqlWindowRepository

log = structlog.get_logger(__name__)

# Oracle and SQLite spell these alike. Reusing the name is fine: a rollback goes to the
# newest savepoint of that name, and savepoints end with their transaction.
SAVEPOINT = Sql("savepoint", "SAVEPOINT batch_write")
ROLLBACK_TO_SAVEPOINT = Sql("rollback_to_savepoint", "ROLLBACK TO SAVEPOINT batch_write")


class Connection(Session, Protocol):
    """A database connection with transaction control, as a backend provides it."""

    async def begin_read(self) -> None:
        """Starts a read-only transaction that sees one consistent snapshot."""
        ...

    async def begin_write(self) -> None:
        """Starts a write transaction holding the lock that serialises writers (the
        revision row), so revision order is commit order."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...

    async def execute_ddl(self, statement: str) -> None:
        """Runs one migration statement outside the statement registry."""
        ...


class Pool(Protocol):
    dialect: Dialect

    async def acquire(self, *, write: bool) -> Connection:
        """A connection for reading, or the right to write. Raises Unavailable when the
        database cannot be reached."""
        ...

    async def release(self, connection: Connection, *, write: bool) -> None: ...

    async def close(self) -> None: ...


class SqlReader:
    """A consistent, read-only view: every repository over one connection."""

    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        self.connection = connection
        # The tables that hold values read and write them through the sealer (values of
        # is_encrypted keys are encrypted at rest).
        sealed = (sealer or Sealer()).session(connection)
        self.configs = SqlConfigRepository(sealed)
        self.overrides = SqlOverrideRepository(sealed)
        self.environments = SqlEnvironmentRepository(connection)
        self.history = SqlHistoryRepository(sealed)
        self.templates = SqlTemplateRepository(connection)
        self.users = SqlUserRepository(connection)
        self.windows = SqlWindowRepository(connection)
        self.flags = SqlFlagRepository(connection)
        self.limits = SqlRateLimitRepository(connection)
        self.tokens = SqlTokenRepository(connection)
        self.change_requests = SqlChangeRequestRepository(sealed)
        self.integrity = SqlIntegrityRepository(connection, sealed)
        self._revisions = SqlRevisionCounter(connection)

    async def current_revision(self) -> int:
        return await self._revisions.current()


class SqlTransaction(SqlReader):
    def __init__(self, connection: Connection, sealer: Sealer | None = None) -> None:
        super().__init__(connection, sealer)
        self._after_commit: list[Callable[[], None]] = []
        self.recorded: list[HistoryEntry] = []
        """Every history row written in this transaction, in order."""
        self.open = True

    async def allocate_revision(self) -> int:
        return await self._revisions.allocate()

    def after_commit(self, callback: Callable[[], None]) -> None:
        self._after_commit.append(callback)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """Undoes what the block wrote, and only that, when it raises (then re-raises):
        its rows, its history rows, its after-commit callbacks and, when the block took
        the transaction's revision, the revision too."""
        callbacks, recorded = len(self._after_commit), len(self.recorded)
        allocated = self._revisions.allocated
        await self.connection.execute(SAVEPOINT)
        try:
            yield
        except BaseException:
            await self.connection.execute(ROLLBACK_TO_SAVEPOINT)
            del self._after_commit[callbacks:]
            del self.recorded[recorded:]
            self._revisions.allocated = allocated
            raise

    def committed(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")


_BATCH: ContextVar[SqlTransaction | None] = ContextVar("switchyard_batch", default=None)
"""The batch the current task writes in, if any."""


class SqlStore:
    """Implements `service.ports.Store` over a backend's pool."""

    def __init__(self, pool: Pool, sealer: Sealer | None = None) -> None:
        self.pool = pool
        self.dialect = pool.dialect
        self.sealer = sealer or Sealer()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SqlReader]:
        connection = await self.pool.acquire(write=False)
        try:
            await connection.begin_read()
            yield SqlReader(connection, self.sealer)
        finally:
            await asyncio.shield(self._end(connection, write=False))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        """Commits when the block exits normally, rolls back when it raises. Inside a
        `batch`, it is the batch's transaction, which the batch ends.

        Ending the transaction is shielded from cancellation (a client that goes away
        mid-call): once COMMIT is sent, the after-commit callbacks (cache invalidation,
        change events) run whatever happens to the caller, so no replica keeps serving
        a value its own database has replaced."""
        joined = _BATCH.get()
        if joined is not None and joined.open:
            yield joined
            return
        connection = await self.pool.acquire(write=True)
        try:
            await connection.begin_write()
        except BaseException:
            await asyncio.shield(self._end(connection, write=True))
            raise
        tx = SqlTransaction(connection, self.sealer)
        try:
            yield tx
        except BaseException:
            tx.open = False
            await asyncio.shield(self._end(connection, write=True))
            raise
        await asyncio.shield(self._end(connection, write=True, commit=tx))

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[SqlTransaction]:
        """One transaction that every `transaction()` opened inside the block (in this
        task) joins: the writes made in it commit together, under one revision, when
        the block exits normally, and none of them when it raises."""
        current = _BATCH.get()
        if current is not None and current.open:
            raise RuntimeError("batches do not nest")
        async with self.transaction() as tx:
            token = _BATCH.set(tx)
            try:
                yield tx
            finally:
                _BATCH.reset(token)

    async def _end(
        self, connection: Connection, *, write: bool, commit: SqlTransaction | None = None
    ) -> None:
        if commit is not None:
            commit.open = False
        try:
            if commit is not None:
                try:
                    await connection.commit()
                except BaseException:
                    await self._quietly_roll_back(connection)
                    raise
            else:
                await self._quietly_roll_back(connection)
        finally:
            await self.pool.release(connection, write=write)
        if commit is not None:
            commit.committed()

    @staticmethod
    async def _quietly_roll_back(connection: Connection) -> None:
        try:
            await connection.rollback()
        except Exception:
            # The connection is broken or no transaction was open; the pool discards
            # or reuses it, and the database has rolled back on its own.
            log.debug("rollback failed", exc_info=True)

    async def close(self) -> None:
        await self.pool.close()


__all__ = ["Connection", "Pool", "SqlReader", "SqlStore", "SqlTransaction"]

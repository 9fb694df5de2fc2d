"""Versioned schema migrations, one folder of `NNNN_name.sql` files per dialect.

Each file is applied once, in order, and recorded in `pf_schema_migrations`. On SQLite a
migration is one transaction. Oracle commits every DDL statement on its own, so a
migration cut off half way is completed on the next run: statements that fail only
because what they make exists already are skipped (an object, a column, a constraint, or
the one row a seed INSERT adds), and nothing else is. Data changes in a migration are
written to be run twice (`WHERE ... IS NULL`).
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from importlib import resources

import structlog

from switchyard.domain.errors import AlreadyExists
from switchyard.store.base import Connection, SqlStore
from switchyard.store.sql import Sql

log = structlog.get_logger(__name__)

_FILE = re.compile(r"(\d{4})_(\w+)\.sql")
_TRIGGER = re.compile(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?TRIGGER\b", re.IGNORECASE | re.MULTILINE)
_BLOCK_END = re.compile(r"^\s*/\s*$", re.MULTILINE)

APPLIED_VERSIONS = Sql(
    "applied_migrations", "SELECT version FROM pf_schema_migrations ORDER BY version"
)
RECORD_VERSION = Sql(
    "record_migration",
    "INSERT INTO pf_schema_migrations (version, name) VALUES (:version, :name)",
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a migration script: `--` comment lines dropped, split at each
    `;` that ends a line. A trigger's body holds `;` of its own, so a trigger runs from
    its `CREATE [OR REPLACE] TRIGGER` to a line holding only `/` (as in SQL*Plus), and
    keeps its last `;` (PL/SQL needs the one after `END`)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    text = "\n".join(lines)
    statements: list[str] = []
    while (start := _TRIGGER.search(text)) is not None:
        end = _BLOCK_END.search(text, start.end())
        if end is None:
            raise ValueError("a trigger in a migration must end with a line holding only '/'")
        statements += _plain_statements(text[: start.start()])
        statements.append(text[start.start() : end.start()].strip())
        text = text[end.end() :]
    return (*statements, *_plain_statements(text))


def _plain_statements(text: str) -> list[str]:
    parts = re.split(r";\s*$", text, flags=re.MULTILINE)
    return [part.strip() for part in parts if part.strip()]


def bootstrap(dialect: str) -> tuple[str, ...]:
    folder = resources.files(__name__).joinpath(dialect)
    return split_statements(folder.joinpath("bootstrap.sql").read_text(encoding="utf-8"))


def migrations(dialect: str) -> list[Migration]:
    """Every migration of `dialect` ("sqlite" or "oracle"), in version order."""
    folder = resources.files(__name__).joinpath(dialect)
    found = []
    for entry in folder.iterdir():
        match = _FILE.fullmatch(entry.name)
        if match:
            found.append(
                Migration(
                    version=int(match.group(1)),
                    name=match.group(2),
                    statements=split_statements(entry.read_text(encoding="utf-8")),
                )
            )
    return sorted(found, key=lambda m: m.version)


async def pending(store: SqlStore) -> list[int]:
    """The versions a migration would apply (all of them on an empty database). Only a
    missing pf_schema_migrations means nothing is applied: any other error (a lost
    connection, a table that cannot be read) is raised, as Unavailable where the driver
    error means that."""
    known = [m.version for m in migrations(store.dialect.name)]
    connection = await store.pool.acquire(write=False)
    try:
        try:
            rows = await connection.fetch_all(APPLIED_VERSIONS)
        except Exception as error:
            if not store.dialect.missing_table(error.__cause__ or error):
                raise
            return known
        finally:
            await _end_read(connection)
    finally:
        await store.pool.release(connection, write=False)
    applied = {int(row["version"]) for row in rows}
    return [version for version in known if version not in applied]


async def _end_read(connection: Connection) -> None:
    """Ends the read, without hiding why it failed: a connection that cannot roll back
    is broken, and the pool discards it."""
    try:
        await connection.rollback()
    except Exception:
        log.debug("rollback after reading the applied migrations failed", exc_info=True)


async def migrate(store: SqlStore, *, up_to: int | None = None) -> list[int]:
    """Applies the pending migrations (those up to version `up_to` only, when given);
    returns their versions (empty when up to date).
    Safe to run from several processes at once: SQLite serialises them on its write lock,
    and on Oracle the loser of a race skips what the winner created."""
    dialect = store.dialect
    connection = await store.pool.acquire(write=True)
    try:
        for statement in bootstrap(dialect.name):
            await _ddl(connection, statement)
        applied = {int(row["version"]) for row in await connection.fetch_all(APPLIED_VERSIONS)}
        done = []
        for migration in migrations(dialect.name):
            if migration.version in applied or (up_to is not None and migration.version > up_to):
                continue
            await _apply(connection, migration, transactional=dialect.transactional_ddl)
            done.append(migration.version)
            log.info("applied migration", version=migration.version, name=migration.name)
        return done
    finally:
        await store.pool.release(connection, write=True)


async def _apply(connection: Connection, migration: Migration, *, transactional: bool) -> None:
    if transactional:
        await connection.begin_write()
        try:
            # A concurrent migrator may have applied it while this one waited for the lock.
            applied = {int(r["version"]) for r in await connection.fetch_all(APPLIED_VERSIONS)}
            if migration.version not in applied:
                for statement in migration.statements:
                    await connection.execute_ddl(statement)
                await connection.execute(
                    RECORD_VERSION, {"version": migration.version, "name": migration.name}
                )
        except BaseException:
            await connection.rollback()
            raise
        await connection.commit()
        return
    for statement in migration.statements:
        await _ddl(connection, statement)
    with contextlib.suppress(AlreadyExists):  # another process finished it first
        await connection.execute(
            RECORD_VERSION, {"version": migration.version, "name": migration.name}
        )
    await connection.commit()


async def _ddl(connection: Connection, statement: str) -> None:
    try:
        await connection.execute_ddl(statement)
    except Exception as error:
        cause = error.__cause__ or error
        if not connection.dialect.already_applied(cause, statement):
            raise


__all__ = ["Migration", "bootstrap", "migrate", "migrations", "pending", "split_statements"]

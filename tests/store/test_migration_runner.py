"""The migration runner tells "nothing applied yet" from "cannot tell": only a missing
pf_schema_migrations means the first; any other error surfaces. And a migration that
runs again on Oracle skips only what is there already because of that migration: a
unique violation (ORA-00001) only for the one-row seed INSERTs it is there for."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import oracledb
import pytest
from oracledb import errors as oracle_errors

from switchyard.store import migrate, open_store
from switchyard.store.dialect import ORACLE, SQLITE
from switchyard.store.migrations import migrations, pending

from .test_oracle_sql import MIGRATION_STATEMENTS


def _oracle_error(text: str) -> oracledb.DatabaseError:
    return oracledb.DatabaseError(oracle_errors._Error(text))


async def test_a_new_database_has_every_migration_pending(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'new.db'}")
    try:
        assert await pending(store) == [m.version for m in migrations("sqlite")]
        await migrate(store)
        assert await pending(store) == []
    finally:
        await store.close()


async def test_an_error_other_than_a_missing_table_surfaces(tmp_path: Path) -> None:
    """A pf_schema_migrations that cannot be read is not "nothing applied": taken for
    that, every migration would run again over the schema."""
    path = tmp_path / "odd.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE pf_schema_migrations (applied TEXT)")
        db.commit()
    store = await open_store(f"sqlite:///{path}")
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such column"):
            await pending(store)
    finally:
        await store.close()


def test_each_dialect_knows_its_missing_table_error() -> None:
    assert SQLITE.missing_table(sqlite3.OperationalError("no such table: pf_schema_migrations"))
    assert not SQLITE.missing_table(sqlite3.OperationalError("database is locked"))
    assert not SQLITE.missing_table(sqlite3.DatabaseError("file is not a database"))
    assert ORACLE.missing_table(_oracle_error("ORA-00942: table or view does not exist"))
    for lost in (
        "ORA-03113: end-of-file on communication channel",
        "DPY-4011: the database or network closed the connection",
        "ORA-01031: insufficient privileges",
    ):
        assert not ORACLE.missing_table(_oracle_error(lost)), lost


def _is_seed_row(statement: str) -> bool:
    return re.match(r"INSERT\s+INTO\s+\w+\s*\([^)]*\)\s*VALUES\s*\(", statement, re.I) is not None


@pytest.mark.parametrize(
    "statement", MIGRATION_STATEMENTS, ids=[" ".join(s.split()[:3]) for s in MIGRATION_STATEMENTS]
)
def test_a_unique_violation_is_skipped_only_for_a_seed_row(statement: str) -> None:
    unique = _oracle_error("ORA-00001: unique constraint (X.PK) violated")
    assert ORACLE.already_applied(unique, statement) is _is_seed_row(statement)


def test_a_unique_violation_of_a_data_change_is_not_skipped() -> None:
    unique = _oracle_error("ORA-00001: unique constraint (X.PK) violated")
    for statement in (
        "UPDATE pf_environments SET name = 'x' WHERE name = 'y'",
        "INSERT INTO pf_users_copy SELECT * FROM pf_users",
        "CREATE UNIQUE INDEX uq_x ON pf_users (email)",
        "MERGE INTO t USING s ON (t.id = s.id) WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)",
    ):
        assert not ORACLE.already_applied(unique, statement), statement
    exists = _oracle_error("ORA-00955: name is already used by an existing object")
    assert ORACLE.already_applied(exists, "CREATE TABLE t (a NUMBER)")
    assert any(_is_seed_row(s) for s in MIGRATION_STATEMENTS), "the migrations seed rows"

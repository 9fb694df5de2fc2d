"""The Oracle contract suite's reset (conftest.ORACLE_RESET) puts a used database back as
a new one has it, and does so every time: `make test-oracle` can run twice.

No Oracle server runs here, so the reset is checked three ways: against the schema the
Oracle migrations declare (every table emptied or put back, each before the tables it
refers to), by parsing every statement with the Oracle grammars, and by rehearsing it on
a SQLite database a real server filled (SQLite enforcing the foreign keys), twice,
after which the database must equal a new one row for row."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from switchyard.gen.v1 import change_pb2, change_pb2_grpc, rate_limit_pb2, rate_limit_pb2_grpc
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.store import migrate, open_store

from ..e2e.conftest import serving
from ..e2e.helpers import value
from ..e2e.test_verify import _write
from .conftest import EMPTIED, LIFT_GUARDS, ORACLE_RESET, RESTORE_GUARDS, SEEDS
from .oracle_grammar import oracle_problems
from .test_schema import oracle_schema

# Stamps the database fills in when a seed row is made: a new database and a reset one
# made theirs at different moments.
_STAMPS = {"created_at", "updated_at", "applied_at"}
KEPT = {"pf_schema_migrations", "pf_revision"}
"""Tables the reset keeps: which migrations ran, and the one counter row (set to 0)."""


def _deleted(statement: str) -> str | None:
    match = re.fullmatch(r"DELETE FROM (\w+)", statement)
    return match.group(1) if match else None


def test_every_table_is_emptied_or_kept_on_purpose() -> None:
    tables = set(oracle_schema().tables)
    emptied = [t for t in map(_deleted, ORACLE_RESET) if t is not None]
    assert sorted(emptied) == sorted(set(emptied)), "a table is emptied twice"
    assert set(emptied) == tables - KEPT
    assert set(EMPTIED) == set(emptied)
    assert "UPDATE pf_revision SET revision = 0 WHERE id = 1" in ORACLE_RESET


def test_each_table_is_emptied_before_the_tables_it_refers_to() -> None:
    order = {t: i for i, t in enumerate(map(_deleted, ORACLE_RESET)) if t is not None}
    unlink = ORACLE_RESET.index("UPDATE pf_environments SET parent_name = NULL")
    for child, table in oracle_schema().tables.items():
        for _, parent in table.foreign_keys:
            if parent == child:
                assert unlink < order[child], f"{child} refers to itself: unlinked first"
            elif child in order:
                assert order[child] < order[parent], f"{child} refers to {parent}"


def test_the_seeds_are_the_migrations_own_and_come_after_every_delete() -> None:
    assert SEEDS and all(s in ORACLE_RESET for s in SEEDS)
    last_delete = max(i for i, s in enumerate(ORACLE_RESET) if _deleted(s))
    assert min(ORACLE_RESET.index(s) for s in SEEDS) > last_delete
    seeded = {re.search(r"INTO (\w+)", s).group(1) for s in SEEDS if s.startswith("INSERT")}  # type: ignore[union-attr]
    assert seeded == {"pf_users", "pf_environments"}


@pytest.mark.parametrize("statement", [*LIFT_GUARDS, *ORACLE_RESET, *RESTORE_GUARDS])
def test_every_reset_statement_is_oracle_sql(statement: str) -> None:
    assert oracle_problems(statement) == []


# --- the rehearsal on SQLite -------------------------------------------------------------


async def _fill(database: Path) -> None:
    """What the contract and e2e tests leave behind: every kind of row, a protected and
    a new environment, a change request, and the seeded users changed."""
    await _write(database)
    async with serving(database) as running:
        config = running.config
        await config.UpsertEnvironment(
            pb.UpsertEnvironmentRequest(
                environment=pb.Environment(name="qa", parent="staging", protected=True)
            )
        )
        await config.SetValue(
            pb.SetValueRequest(key="api.timeout", value=value(7), environment="qa")
        )
        limits = rate_limit_pb2_grpc.RateLimitServiceStub(running.channel)
        await limits.UpsertRateLimit(
            rate_limit_pb2.UpsertRateLimitRequest(
                rate_limit=rate_limit_pb2.RateLimit(
                    key="api", name="API", max_requests=10, time_window_seconds=60,
                    scope_type=rate_limit_pb2.SCOPE_TYPE_USER, environment="qa",
                )
            )
        )  # fmt: skip
        changes = change_pb2_grpc.ChangeRequestServiceStub(running.channel)
        await changes.ProposeChange(
            change_pb2.ProposeChangeRequest(
                write=change_pb2.ProposedWrite(
                    set_value=pb.SetValueRequest(
                        key="vault.secret", value=value("s"), environment="production"
                    )
                )
            )
        )
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute(
            "INSERT INTO pf_history_retention (keep_from_revision, performed_by, reason) "
            "VALUES (1, 'test', 'rehearsal')"
        )
        db.execute(
            "UPDATE pf_users SET display_name = 'changed', grants = '[]' "
            "WHERE username = 'switchyard-scheduler'"
        )
        db.commit()


def _rehearse(database: Path) -> None:
    """The reset as Oracle runs it, on SQLite: its guards are dropped where Oracle's are
    disabled (a rehearsal compares rows, not triggers), and foreign keys are enforced."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        for statement in LIFT_GUARDS:
            db.execute(f"DROP TRIGGER IF EXISTS {statement.split()[2]}")
        for statement in ORACLE_RESET:
            db.execute(statement)
        db.commit()


def _rows(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        names = [
            n
            for (n,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        for name in names:
            rows = [
                tuple((k, row[k]) for k in row.keys() if k not in _STAMPS)  # noqa: SIM118
                for row in db.execute(f"SELECT * FROM {name}")
            ]
            tables[name] = sorted(rows)
    return tables


async def test_the_reset_makes_a_used_database_new_and_again(tmp_path: Path) -> None:
    used, new = tmp_path / "used.db", tmp_path / "new.db"
    await _fill(used)
    store = await open_store(f"sqlite:///{new}")
    await migrate(store)
    await store.close()
    filled = _rows(used)
    assert all(filled[table] for table in EMPTIED), [t for t in EMPTIED if not filled[t]]

    _rehearse(used)
    once = _rows(used)
    _rehearse(used)

    assert once == _rows(new)
    assert _rows(used) == once
    scheduler = [r for r in once["pf_users"] if ("username", "switchyard-scheduler") in r]
    assert scheduler, "the seeded scheduler user is kept"


def test_the_rehearsal_catches_a_table_emptied_too_late(tmp_path: Path) -> None:
    """With foreign keys enforced, emptying a table before one that refers to it fails."""
    database = tmp_path / "order.db"
    asyncio.run(_fill(database))
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            db.execute("DELETE FROM pf_value_keys")

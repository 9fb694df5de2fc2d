"""The storage contract suite runs against every backend: SQLite always, Oracle when
SWITCHYARD_TEST_ORACLE_DSN names one (`make test-oracle` starts Oracle Database Free in
Docker and sets it). Oracle is left out of the parameters, not skipped, when no DSN is
given."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.store import SqlStore, migrate, open_store
from switchyard.store.keyring import Keyring, KeySource
from switchyard.store.migrations import migrations

ORACLE_DSN = os.environ.get("SWITCHYARD_TEST_ORACLE_DSN", "")
BACKENDS = ["sqlite", *(["oracle"] if ORACLE_DSN else [])]

SEEDED_ENVIRONMENTS = {
    "development": None,
    "test": None,
    "staging": None,
    "production": None,
    "demo": "production",
    "local": "development",
}
LOCAL_OPERATOR_ID = "00000000-0000-0000-0000-000000000001"

# Oracle's schema outlives a test: put it back as a new database has it, every time the
# same (the suite runs again on the same database, `make test-oracle` twice). Every table
# is emptied, children before the tables they refer to, and the rows the migrations seed
# (users, environments and their protection) are made again by the migrations' own
# statements. The history and the retention ledger are append-only: their guards against
# deletes are lifted for the reset only (DDL, as any pruning past the ledger would be),
# and put back however the reset ends. tests/store/test_oracle_reset.py checks the reset
# against the schema and rehearses it on SQLite; test_oracle_sql parses it.
_APPEND_ONLY_GUARDS = ("trg_history_no_delete", "trg_retention_no_delete")
LIFT_GUARDS = tuple(f"ALTER TRIGGER {guard} DISABLE" for guard in _APPEND_ONLY_GUARDS)
RESTORE_GUARDS = tuple(f"ALTER TRIGGER {guard} ENABLE" for guard in _APPEND_ONLY_GUARDS)
EMPTIED = (
    "pf_config_history",
    "pf_history_retention",
    "pf_change_requests",
    "pf_api_tokens",
    "pf_maintenance_windows",
    "pf_environment_config",
    "pf_system_config",
    "pf_value_keys",
    "pf_config_templates",
    "pf_feature_flags",
    "pf_rate_limits",
    "pf_environments",
    "pf_users",
)
_SEED = re.compile(r"^\s*(INSERT\s+INTO|UPDATE)\s+(pf_users|pf_environments)\b", re.IGNORECASE)
SEEDS = tuple(s for m in migrations("oracle") for s in m.statements if _SEED.match(s))
"""The migrations' statements that make the rows a new database holds, in order."""
ORACLE_RESET = (
    *(f"DELETE FROM {table}" for table in EMPTIED[:-2]),
    # Environments refer to their parents.
    "UPDATE pf_environments SET parent_name = NULL",
    *(f"DELETE FROM {table}" for table in EMPTIED[-2:]),
    *SEEDS,
    "UPDATE pf_revision SET revision = 0 WHERE id = 1",
)
"""Run between LIFT_GUARDS and RESTORE_GUARDS."""


async def _reset_oracle(store: SqlStore) -> None:
    connection = await store.pool.acquire(write=True)
    try:
        for statement in LIFT_GUARDS:
            await connection.execute_ddl(statement)
        try:
            for statement in ORACLE_RESET:
                await connection.execute_ddl(statement)
            await connection.commit()
        except BaseException:
            await connection.rollback()  # the DDL below would commit a reset half done
            raise
        finally:
            for statement in RESTORE_GUARDS:
                await connection.execute_ddl(statement)
    finally:
        await store.pool.release(connection, write=True)


async def open_backend(backend: str, directory: Path) -> SqlStore:
    if backend == "sqlite":
        store = await open_store(f"sqlite:///{directory / 'contract.db'}")
        await migrate(store)
        return store
    # Oracle has no embedded key file: a keyring of its own for each test's data keys.
    store = await open_store(ORACLE_DSN, keys=KeySource.of(Keyring.generate()))
    await migrate(store)
    await _reset_oracle(store)
    return store


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_backend(backend, tmp_path)
    try:
        yield opened
    finally:
        await opened.close()

"""The storage contract suite runs against every backend: SQLite always, Oracle when
SWITCHYARD_TEST_ORACLE_DSN names one (`make test-oracle` starts Oracle Database Free in
Docker and sets it). Oracle is left out of the parameters, not skipped, when no DSN is
given."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.store import SqlStore, migrate, open_store
from switchyard.store.keyring import Keyring, KeySource

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

# Oracle's schema outlives a test: put it back as a new database has it. Children first.
# The history and the retention ledger are append-only: their guards are lifted for the
# reset only (DDL, as any pruning past the ledger would have to be).
_APPEND_ONLY_GUARDS = ("trg_history_no_delete", "trg_retention_no_delete")
_ORACLE_RESET = (
    *(f"ALTER TRIGGER {guard} DISABLE" for guard in _APPEND_ONLY_GUARDS),
    "DELETE FROM pf_config_history",
    "DELETE FROM pf_history_retention",
    *(f"ALTER TRIGGER {guard} ENABLE" for guard in _APPEND_ONLY_GUARDS),
    "DELETE FROM pf_environment_config",
    "DELETE FROM pf_system_config",
    "DELETE FROM pf_value_keys",
    "DELETE FROM pf_config_templates",
    "DELETE FROM pf_feature_flags",
    "DELETE FROM pf_rate_limits",
    "UPDATE pf_environments SET parent_name = NULL",
    "DELETE FROM pf_environments WHERE name NOT IN "
    "('development', 'test', 'staging', 'production', 'demo', 'local')",
    "UPDATE pf_environments SET parent_name = 'production' WHERE name = 'demo'",
    "UPDATE pf_environments SET parent_name = 'development' WHERE name = 'local'",
    f"DELETE FROM pf_users WHERE id <> '{LOCAL_OPERATOR_ID}'",
    "UPDATE pf_revision SET revision = 0 WHERE id = 1",
)


async def _reset_oracle(store: SqlStore) -> None:
    connection = await store.pool.acquire(write=True)
    try:
        for statement in _ORACLE_RESET:
            await connection.execute_ddl(statement)
        await connection.commit()
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

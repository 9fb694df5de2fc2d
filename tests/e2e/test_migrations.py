"""`switchyard migrate` and the start-up rule: an embedded database is migrated when the
server starts; any other is migrated by `switchyard migrate`, and a server that finds its
schema behind refuses to start rather than run against it."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.app import open_application
from switchyard.domain.errors import FailedPrecondition
from switchyard.settings import Settings
from switchyard.store.migrations import migrations

from .processes import run_switchyard


async def test_migrate_applies_once_then_reports_up_to_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"

    first = await run_switchyard("migrate", "--database-url", url)
    second = await run_switchyard("migrate", "--database-url", url)

    versions = [m.version for m in migrations("sqlite")]
    assert first[0] == 0 and f"applied migrations: {versions}" in first[1]
    assert second == (0, "database is up to date\n")


async def test_migrate_says_why_it_cannot_reach_the_database() -> None:
    code, out = await run_switchyard("migrate", "--database-url", "oracle://app:x@127.0.0.1:9/DB")

    assert code == 1
    assert "cannot be reached" in out and "caused by" in out


async def test_a_server_that_may_not_migrate_refuses_a_schema_that_is_behind(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'behind.db'}"

    with pytest.raises(FailedPrecondition) as refused:
        await open_application(Settings(database_url=url, migrate=False))
    assert "switchyard migrate" in refused.value.message

    code, _ = await run_switchyard("migrate", "--database-url", url)
    application = await open_application(Settings(database_url=url, migrate=False))
    try:
        assert code == 0
        assert application.config.revision > 0  # started, and seeded the demo keys
    finally:
        await application.close()

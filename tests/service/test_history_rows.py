"""History rows that the replay (test_history_replay.py) cannot see missing: a row that
the repository removes along with another, and fields that a person reads in a row's
documents and diff rather than in `rows_after`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.models import (
    ChangeKind,
    ConfigDefinition,
    ConfigType,
    HistoryAction,
    HistoryEntry,
    Template,
)
from switchyard.service.config import ConfigService
from switchyard.service.context import WriteContext
from switchyard.store import SqlStore, migrate, open_store

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="history rows", ticket="OPS-1")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'rows.db'}")
    await migrate(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def _history(store: SqlStore) -> list[HistoryEntry]:
    async with store.read() as reader:
        return await reader.history.history_after(0, 1000)


async def test_deleting_a_key_records_the_removal_of_each_of_its_overrides(
    store: SqlStore,
) -> None:
    config = ConfigService(store)
    await config.create_config(
        ConfigDefinition(key="api.timeout", type=ConfigType.NUMBER, category="api", value=30),
        CTX,
    )
    await config.set_value("api.timeout", 5, "staging", CTX)
    await config.set_value("api.timeout", 7, "production", CTX, priority=200)

    revision = await config.delete_config("api.timeout", None, CTX)

    rows = [e for e in await _history(store) if e.revision == revision]
    removed = [(e.table_name, e.environment, e.action, e.old_value) for e in rows]
    assert sorted(removed[:-1], key=str) == [
        ("pf_environment_config", "production", HistoryAction.DELETE, 7),
        ("pf_environment_config", "staging", HistoryAction.DELETE, 5),
    ]
    assert removed[-1] == ("pf_system_config", None, HistoryAction.DELETE, removed[-1][3])
    assert all(e.reason == "history rows" and e.ticket == "OPS-1" for e in rows)
    assert all(e.rows_after is not None for e in rows)
    assert rows[0].rows_after is not None and rows[0].rows_after["pf_environment_config"] is None


async def test_a_templates_history_shows_every_field_it_defines(store: SqlStore) -> None:
    config = ConfigService(store)
    template = Template(
        name="busy",
        template_type="scaling",
        config_values={"api.timeout": 5},
        rate_limits={"api-global": {"max_requests": 10}},
    )
    await config.upsert_template(template, CTX)
    await config.upsert_template(
        Template(
            name="busy",
            template_type="scaling",
            config_values={"api.timeout": 5},
            rate_limits={"api-global": {"max_requests": 20}},
            feature_flags={"checkout": True},
            suitable_scale="large",
            prerequisites=("redis",),
        ),
        CTX,
    )

    update = [e for e in await _history(store) if e.kind is ChangeKind.TEMPLATE][-1]
    assert {op["path"] for op in update.value_diff} == {
        "/rate_limits/api-global/max_requests",
        "/feature_flags",
        "/suitable_scale",
        "/prerequisites/0",
    }

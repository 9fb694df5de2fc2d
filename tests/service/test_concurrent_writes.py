"""Concurrent writers through the use cases on a real SQLite file: optimistic versions
hold, and revisions come out in commit order with no gaps."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.errors import Conflict
from switchyard.domain.models import ConfigDefinition, ConfigType, HistoryQuery, PageRequest
from switchyard.service.config import ConfigService
from switchyard.service.context import WriteContext
from switchyard.store import migrate, open_store

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="concurrency test")


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[ConfigService]:
    store = await open_store(f"sqlite:///{tmp_path / 'c.db'}")
    await migrate(store)
    config = ConfigService(store)
    await config.start()
    await config.create_config(
        ConfigDefinition(key="counter", type=ConfigType.NUMBER, category="test", value=0), CTX
    )
    try:
        yield config
    finally:
        await store.close()


async def test_same_expected_version_lets_exactly_one_writer_win(service: ConfigService) -> None:
    start = (await service.get_value("counter", None)).value.version

    results = await asyncio.gather(
        *(service.set_value("counter", n, None, CTX, expected_version=start) for n in range(1, 21)),
        return_exceptions=True,
    )

    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    read = await service.get_value("counter", None)
    assert read.value.value == winners[0].value
    assert read.value.version == start + 1


async def test_unconditional_writers_all_land_in_revision_order(service: ConfigService) -> None:
    before = service.revision

    results = await asyncio.gather(
        *(service.set_value("counter", n, None, CTX) for n in range(1, 31))
    )

    revisions = sorted(r.revision for r in results)
    assert revisions == list(range(before + 1, before + 31))
    page, _ = await service.get_history(HistoryQuery(key="counter"), PageRequest(size=100))
    value_changes = [e for e in page.items if e.revision > before]
    assert [e.revision for e in value_changes] == sorted(revisions, reverse=True)
    # Each change's old value is the value the previous revision wrote: nothing was lost.
    by_revision = sorted(value_changes, key=lambda e: e.revision)
    for previous, current in itertools.pairwise(by_revision):
        assert current.old_value == previous.new_value
    final = await service.get_value("counter", None)
    assert final.value.value == by_revision[-1].new_value
    assert final.value.version == by_revision[-1].version

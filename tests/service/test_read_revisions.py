"""The revision an answer reports is one it is true at: a cached answer reports the
revision the caches are current to, not a newer one a database read has seen, or a
client watching from it would miss the change in between."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.service.config import ConfigService
from switchyard.service.context import WriteContext
from switchyard.service.seed import seed_demo
from switchyard.store import SqlStore, migrate, open_store

CTX = WriteContext(actor=LOCAL_OPERATOR)


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    url = f"sqlite:///{tmp_path / 'rev.db'}"
    first, second = await open_store(url), await open_store(url)
    await migrate(first)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_cached_answer_does_not_claim_a_revision_its_cache_has_not_heard_of(
    stores: tuple[SqlStore, SqlStore],
) -> None:
    a, b = ConfigService(stores[0]), ConfigService(stores[1])
    await a.start()
    await seed_demo(a, LOCAL_OPERATOR)
    await b.start()  # b hears of other replicas' changes only through apply()
    cached = await b.get_value("api.timeout", None)

    changed = await a.set_value("api.timeout", 90, None, CTX)
    other = await b.get_value("support.email", None)  # a database read: sees the change
    again = await b.get_value("api.timeout", None)  # still the cached, older answer

    assert other.revision == changed.revision
    assert again.value.value == 30
    assert again.revision == cached.revision < changed.revision

    async with stores[1].read() as reader:
        entries = await reader.history.history_after(cached.revision, 10)
    b.apply(changed.revision, entries)
    fresh = await b.get_value("api.timeout", None)

    assert (fresh.value.value, fresh.revision) == (90, changed.revision)

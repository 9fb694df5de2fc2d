"""The follower reads a large revision (a batch of thousands of writes) in bounded parts
over a real SQLite history: every revision reaches the bus once, whole and in order, no
row is read twice, and no read returns more than the follower's batch of rows. Before,
it read the revision again from its start with a doubled limit until it fitted (500,
1,000, 2,000, 4,000, 8,000 rows for one batch of 5,000 writes), each read decoded in one
go on the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchyard.domain.models import HistoryEntry
from switchyard.events.bus import ChangeBus, Revision
from switchyard.events.follower import HistoryFollower
from switchyard.store import migrate, open_store
from switchyard.store.base import SqlStore

from ..store.test_contract import change, record


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'follow.db'}")
    assert isinstance(opened, SqlStore)
    await migrate(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_large_revision_is_read_in_parts_and_published_once_whole(
    store: SqlStore,
) -> None:
    small = await record(store, change("before"))
    large = await record(store, *(change(f"bulk.key_{i:04d}") for i in range(1050)))
    after = await record(store, change("after.a"), change("after.b"))
    reads: list[tuple[int, int | None, int]] = []

    async def history_after(
        after_revision: int, limit: int, *, after_index: int | None = None
    ) -> list[HistoryEntry]:
        async with store.read() as reader:
            rows = await reader.history.history_after(
                after_revision, limit, after_index=after_index
            )
        reads.append((after_revision, after_index, len(rows)))
        return rows

    bus = ChangeBus()
    published: list[Revision] = []
    bus.add_listener(published.append)
    follower = HistoryFollower(history_after, bus, batch=100)

    assert await follower.catch_up() == 3

    assert [(r.revision, len(r.entries)) for r in published] == [
        (small, 1),
        (large, 1050),
        (after, 2),
    ]
    keys = [e.key for e in published[1].entries]
    assert keys == [f"bulk.key_{i:04d}" for i in range(1050)]
    assert sum(count for _, _, count in reads) == 1053  # no row read twice
    assert max(count for _, _, count in reads) <= 100
    assert follower.position == after

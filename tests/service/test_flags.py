"""FlagService over a real SQLite file: two services stand for two replicas. Changes are
applied once, whichever path brings them first, and counts survive a failed flush."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.errors import Unavailable
from switchyard.domain.flags import EvaluationContext, FeatureFlag, Reason
from switchyard.service.context import WriteContext
from switchyard.service.flags import FlagService
from switchyard.store import SqlStore, migrate, open_store

WRITE = WriteContext(actor=LOCAL_OPERATOR, reason="service test")
ANYONE = EvaluationContext(user_id="alice")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'flags.db'}")
    await migrate(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def service(store: SqlStore) -> FlagService:
    started = FlagService(store, flush_seconds=3600)
    await started.start()
    return started


def flag(key: str = "checkout", **fields: object) -> FeatureFlag:
    values: dict[str, object] = {"is_enabled": True, "rollout_percentage": 100, **fields}
    return FeatureFlag(key=key, name=key, **values)  # type: ignore[arg-type]


async def test_a_replica_applies_changes_from_the_history_rows_alone(store: SqlStore) -> None:
    writer, reader = await service(store), await service(store)
    await writer.upsert_flag(flag(), None, WRITE)
    _, off = await writer.set_enabled("checkout", False, WRITE)

    async with store.read() as view:
        rows = await view.history.history_after(0, 100)
    for revision in sorted({row.revision for row in rows}):
        reader.apply(revision, [row for row in rows if row.revision == revision])

    answer, revision = reader.evaluate("checkout", ANYONE)
    assert (answer.reason, revision) == (Reason.DISABLED, off)


async def test_a_change_is_applied_once_and_an_older_one_never_undoes_a_newer(
    store: SqlStore,
) -> None:
    writer, reader = await service(store), await service(store)
    await writer.upsert_flag(flag(), None, WRITE)
    await writer.set_enabled("checkout", False, WRITE)
    async with store.read() as view:
        created, disabled = await view.history.history_after(0, 100)

    reader.apply(disabled.revision, [disabled])
    reader.apply(created.revision, [created])  # late, and older: ignored
    reader.apply(disabled.revision, [disabled])  # again: no change

    assert reader.evaluate("checkout", ANYONE)[0].reason is Reason.DISABLED


async def test_listeners_hear_which_flags_a_revision_changed(store: SqlStore) -> None:
    writer = await service(store)
    heard: list[tuple[int, frozenset[str]]] = []
    writer.add_flag_listener(lambda revision, keys: heard.append((revision, keys)))

    _, _, revision = await writer.upsert_flag(flag(), None, WRITE)

    assert heard == [(revision, frozenset({"checkout"}))]


async def test_counts_that_cannot_be_written_are_kept_for_the_next_flush(
    store: SqlStore, tmp_path: Path
) -> None:
    counter = await service(store)
    await counter.upsert_flag(flag(), None, WRITE)
    for _ in range(3):
        counter.evaluate("checkout", ANYONE)
    await store.close()  # the database is gone from under the service

    with pytest.raises(Unavailable):
        await counter.flush_counts()

    reopened = await open_store(f"sqlite:///{tmp_path / 'flags.db'}")
    try:
        counter._store = reopened  # the same service, its database back
        counter.evaluate("checkout", ANYONE)
        await counter.flush_counts()
        async with reopened.read() as view:
            stored = await view.flags.get_flag("checkout")
    finally:
        await reopened.close()
    assert stored.evaluation_count == 4
    assert stored.last_evaluated is not None and stored.last_evaluated <= datetime.now(UTC)

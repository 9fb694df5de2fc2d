"""What is particular to each backend: SQLite shared by several processes, Oracle URLs
and an Oracle that cannot be reached, and URLs of no known kind."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from switchyard.domain.errors import InvalidArgument, Unavailable
from switchyard.domain.models import ChangeKind
from switchyard.store import SqlStore, migrate, open_store, sqlite_path
from switchyard.store.dialect import ORACLE, SQLITE
from switchyard.store.oracle import OracleTarget

from .conftest import open_backend
from .test_contract import change, record


async def test_stores_sharing_one_sqlite_file_never_share_a_revision(tmp_path: Path) -> None:
    """As two server processes would: each store has its own connections and its own
    in-process writer lock; BEGIN IMMEDIATE serialises them on the file."""
    stores = [await open_backend("sqlite", tmp_path) for _ in range(2)]
    try:

        async def write(store: SqlStore, n: int) -> int:
            return await record(store, change(f"p{n}"))

        revisions = await asyncio.gather(*(write(stores[n % 2], n) for n in range(40)))
    finally:
        for opened in stores:
            await opened.close()

    assert sorted(revisions) == list(range(1, 41))


async def test_sqlite_tables_are_strict(tmp_path: Path) -> None:
    """A value of the wrong type is refused, as Oracle would refuse it, rather than kept."""
    store = await open_backend("sqlite", tmp_path)
    await store.close()
    with sqlite3.connect(tmp_path / "contract.db") as raw, pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE pf_revision SET revision = 'many' WHERE id = 1")


async def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a directory should be")

    with pytest.raises(Unavailable):
        await open_store(f"sqlite:///{tmp_path / 'taken' / 'x.db'}")


def test_sqlite_urls_name_relative_and_absolute_paths() -> None:
    assert sqlite_path("sqlite:///data/switchyard.db") == Path("data/switchyard.db")
    assert sqlite_path("sqlite:////var/lib/switchyard.db") == Path("/var/lib/switchyard.db")
    assert sqlite_path("sqlite:///x.db?busy_timeout_ms=10") == Path("x.db")


@pytest.mark.parametrize("url", ["", "sqlite:///", "postgres://db/x", "mysql://u:secret@db/x"])
async def test_a_url_of_no_known_kind_is_refused_without_echoing_secrets(url: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        await open_store(url)

    assert "database_url" in refused.value.violations[0].field
    assert "secret" not in refused.value.message


def test_oracle_urls() -> None:
    target = OracleTarget.parse("oracle://app:p%40ss@db.example.com:1522/FREEPDB1")

    assert target == OracleTarget(user="app", password="p@ss", dsn="db.example.com:1522/FREEPDB1")
    assert OracleTarget.parse("oracle://app:x@db/ORCL").dsn == "db:1521/ORCL"
    for bad in ("oracle://db:1521/ORCL", "oracle://app:x@db:1521", "oracle:///x"):
        with pytest.raises(InvalidArgument):
            OracleTarget.parse(bad)


async def test_an_oracle_that_cannot_be_reached_is_unavailable_at_once() -> None:
    """The real driver, against a port nobody listens on: a clear error at start-up,
    not a hang on the first call."""
    with pytest.raises(Unavailable) as refused:
        await asyncio.wait_for(open_store("oracle://app:x@127.0.0.1:9/FREEPDB1"), timeout=30)

    assert "DPY-" in refused.value.message


def test_timestamps_are_utc_in_both_dialects() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    moment = datetime(2026, 11, 25, 10, 0, 0, 1, tzinfo=timezone(timedelta(hours=2)))

    assert SQLITE.bind_time(moment) == "2026-11-25 08:00:00.000001"
    assert SQLITE.read_time("2026-11-25 08:00:00.000001") == moment
    assert ORACLE.bind_time(moment) == datetime(2026, 11, 25, 8, 0, 0, 1)
    assert ORACLE.read_time(datetime(2026, 11, 25, 8, 0, 0, 1)) == moment.astimezone(UTC)


def test_sqlite_times_keep_a_four_digit_year_so_they_read_back_and_sort() -> None:
    """Before the year 1000 strftime's %Y has fewer digits (glibc): such a time must still
    read back, and sort as the moments do, since queries compare the text."""
    from datetime import UTC, datetime

    early = [datetime(year, 1, 1, tzinfo=UTC) for year in (1, 999, 1000, 2026, 9999)]
    texts = [SQLITE.bind_time(moment) for moment in early]

    assert texts[0] == "0001-01-01 00:00:00.000000"
    assert [SQLITE.read_time(text) for text in texts] == early
    assert sorted(texts) == texts
    assert SQLITE.read_time("1-01-01 00:00:00.000000") == early[0]  # written before the fix


async def test_a_write_that_cannot_get_the_lock_in_time_is_unavailable(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock past the busy timeout: the write gives
    up with Unavailable (UNAVAILABLE to callers, who may retry), and reads go on."""
    path = tmp_path / "locked.db"
    store = await open_store(f"sqlite:///{path}?busy_timeout_ms=200")
    try:
        await migrate(store)
        with sqlite3.connect(path, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(Unavailable):
                await record(store, change("blocked"))
            async with store.read() as reader:
                assert await reader.current_revision() == 0
            other.execute("ROLLBACK")
        assert await record(store, change("free again")) == 1
    finally:
        await store.close()


async def test_migrating_sqlite_from_version_1_keeps_the_history(tmp_path: Path) -> None:
    """Versions 2 and 4 rebuild the history table (SQLite cannot change a CHECK in
    place); rows that version 1 wrote (with its columns) are kept."""
    store = await open_store(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        assert await migrate(store, up_to=1) == [1]
        with sqlite3.connect(tmp_path / "old.db") as raw:  # as version 1's service wrote them
            raw.execute("UPDATE pf_revision SET revision = 1 WHERE id = 1")
            for index, key in enumerate(["kept", "kept too"]):
                raw.execute(
                    "INSERT INTO pf_config_history (id, revision, change_index, change_kind, "
                    "table_name, record_id, config_key, action, changed_by) VALUES "
                    "(?, 1, ?, 'config', 'pf_system_config', ?, ?, 'update', "
                    "'00000000-0000-0000-0000-000000000001')",
                    (f"row-{index}", index, key, key),
                )

        assert (await migrate(store))[0] == 2

        async with store.read() as reader:
            rows = await reader.history.history_after(0, 10)
            assert await reader.current_revision() == 1
        assert [(e.revision, e.key) for e in rows] == [(1, "kept"), (1, "kept too")]
        assert await record(store, change("window", kind=ChangeKind.MAINTENANCE_WINDOW)) == 2
    finally:
        await store.close()


async def test_a_write_cancelled_while_it_waits_for_the_lock_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    """A caller that goes away while its write waits for SQLite's lock (another process
    holds it): the BEGIN it sent still runs on the connection's thread once the lock is
    free. The writer connection must come back to the pool with no transaction open, or
    the next write fails with "cannot start a transaction within a transaction" (the
    scheduler once did)."""
    path = tmp_path / "cancelled.db"
    store = await open_store(f"sqlite:///{path}")
    try:
        await migrate(store)
        with sqlite3.connect(path, isolation_level=None) as other:
            other.execute("BEGIN IMMEDIATE")
            waiting = asyncio.create_task(record(store, change("abandoned")))
            await asyncio.sleep(0.3)  # the BEGIN IMMEDIATE is waiting on the lock
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            other.execute("ROLLBACK")
        await asyncio.sleep(0.3)  # the abandoned BEGIN IMMEDIATE has run by now

        assert await record(store, change("next writer")) == 1
    finally:
        await store.close()

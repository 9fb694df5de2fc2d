"""Migration 0007 on a database that already holds sealed values: every row the sealer
wrote is marked as sealed (`sealed_with`), no row whose text only looks sealed is, and
the server reads the migrated database exactly as it read the original.

The database before 0007 is made as the earlier code left it: a server writes values
of encrypted keys, and texts that look sealed, through the API; its rows (every column
but `sealed_with`, which that code did not have) are copied into a database migrated up
to 0006 (the envelope format did not change). `switchyard migrate` then runs as an
operator runs it, and the marks it computes are compared with those the writer made."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from switchyard.gen.v1 import change_pb2, change_pb2_grpc
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.store import migrate, open_store
from switchyard.store.sealing import SEALABLE

from .conftest import Running, serving
from .helpers import value
from .processes import run_switchyard
from .test_marker_texts import DOCUMENT, ENVELOPE, LOOKS_REAL, WRITES


def _rows(database: Path, sql: str, *binds: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        return list(db.execute(sql, binds))


async def _write_everything(running: Running, database: Path) -> None:
    config = running.config
    await config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="vault.secret",
                type=pb.CONFIG_TYPE_STRING,
                category="vault",
                is_active=True,
                is_editable=True,
                is_deletable=True,
                is_encrypted=True,
                value=value("secret-1"),
                default_value=value("default-1"),
            ),
            reason=ENVELOPE,
        )
    )
    await config.SetValue(
        pb.SetValueRequest(key="vault.secret", value=value("secret-2"), environment="staging")
    )
    expires = timestamp_pb2.Timestamp()
    expires.FromDatetime(datetime.now(UTC) + timedelta(days=1))
    await config.SetValue(
        pb.SetValueRequest(
            key="vault.secret",
            value=value("secret-3"),
            environment="staging",
            priority=200,
            expires_at=expires,
        )
    )
    changes = change_pb2_grpc.ChangeRequestServiceStub(running.channel)
    await changes.ProposeChange(
        change_pb2.ProposeChangeRequest(
            write=change_pb2.ProposedWrite(
                set_value=pb.SetValueRequest(
                    key="vault.secret", value=value("secret-4"), environment="production"
                )
            ),
            reason=DOCUMENT,
        )
    )
    await config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="vault.retired",
                type=pb.CONFIG_TYPE_STRING,
                category="vault",
                is_active=True,
                is_editable=True,
                is_deletable=True,
                is_encrypted=True,
                value=value("retired-1"),
            )
        )
    )
    await config.DeleteConfig(pb.DeleteConfigRequest(key="vault.retired"))
    await config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="vault.empty",
                type=pb.CONFIG_TYPE_STRING,
                category="vault",
                is_active=True,
                is_editable=True,
                is_encrypted=True,
            )
        )
    )
    # Texts that look sealed everywhere a caller types; one names the real data key.
    (key_ref,) = _rows(
        database, "SELECT key_ref FROM pf_value_keys WHERE config_key = ?", "vault.secret"
    )[0]
    forged = f"enc:v1:{key_ref}:" + "A" * 40
    await config.SetValue(
        pb.SetValueRequest(
            key="vault.secret", value=value("secret-5"), reason=forged, ticket=forged
        )
    )
    texts = [ENVELOPE, DOCUMENT, LOOKS_REAL, forged, json_format.MessageToJson(value(forged))]
    for index, write in enumerate(sorted(WRITES)):
        await WRITES[write](running, texts[index % len(texts)])
    await config.CreateConfig(
        pb.CreateConfigRequest(
            config=pb.ConfigDefinition(
                key="app.forged",
                type=pb.CONFIG_TYPE_JSON,
                category="test",
                is_active=True,
                is_editable=True,
                value=value({"sealed": forged}),
                default_value=value(forged),
            )
        )
    )


def _copy_without_sealed_with(source: Path, target: Path) -> None:
    """Every row of `source` into `target` (migrated up to 0006), column by column."""
    with sqlite3.connect(target) as db:
        db.execute("ATTACH DATABASE ? AS src", (str(source),))
        tables = [
            name
            for (name,) in db.execute(
                "SELECT name FROM src.sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' AND name <> 'pf_schema_migrations'"
            )
        ]
        for table in tables:
            db.execute(f"DELETE FROM main.{table}")  # the history is empty: no guard fires
        for table in tables:
            mine = {row[1] for row in db.execute(f"PRAGMA main.table_info({table})")}
            theirs = [row[1] for row in db.execute(f"PRAGMA src.table_info({table})")]
            columns = ", ".join(c for c in theirs if c in mine)
            db.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM src.{table}")
        db.commit()
        db.execute("DETACH DATABASE src")


def _marks(database: Path) -> dict[tuple[str, str], str | None]:
    return {
        (table, row_id): sealed_with
        for table in SEALABLE
        for row_id, sealed_with in _rows(database, f"SELECT id, sealed_with FROM {table}")
    }


async def _everything_read(running: Running) -> list[object]:
    changes = change_pb2_grpc.ChangeRequestServiceStub(running.channel)
    return [
        await running.config.GetHistory(pb.GetHistoryRequest(page_size=1000)),
        await running.config.GetConfig(pb.GetConfigRequest(key="vault.secret")),
        await running.config.GetValue(
            pb.GetValueRequest(key="vault.secret", environment="staging")
        ),
        await running.config.GetConfig(pb.GetConfigRequest(key="app.forged")),
        await changes.ListChangeRequests(change_pb2.ListChangeRequestsRequest()),
    ]


async def test_migration_0007_marks_exactly_the_rows_the_sealer_wrote(tmp_path: Path) -> None:
    source, target = tmp_path / "written.db", tmp_path / "upgraded.db"
    async with serving(source) as running:
        await _write_everything(running, source)
        before = await _everything_read(running)
    written = _marks(source)
    sealed = {where for where, mark in written.items() if mark is not None}
    assert {table for table, _ in sealed} == set(SEALABLE), "every table has sealed rows"
    assert len(sealed) < len(written), "and plain ones"

    store = await open_store(f"sqlite:///{target}")
    await migrate(store, up_to=6)
    await store.close()
    _copy_without_sealed_with(source, target)
    shutil.copy(f"{source}.keys", f"{target}.keys")
    assert set(_marks_before(target)) == set(written)

    code, out = await run_switchyard("migrate", "--database-url", f"sqlite:///{target}")

    assert code == 0 and "[7]" in out, out
    assert _marks(target) == written
    async with serving(target) as running:
        assert await _everything_read(running) == before
    code, out = await run_switchyard("verify", "--database-url", f"sqlite:///{target}")
    assert code == 0, out
    # The history's guard against updates is back.
    with sqlite3.connect(target) as db:
        try:
            db.execute("UPDATE pf_config_history SET sealed_with = NULL")
        except sqlite3.DatabaseError as error:
            assert "append-only" in str(error)
        else:
            raise AssertionError("the history accepted an update")


def _marks_before(database: Path) -> dict[tuple[str, str], None]:
    """The rows of the sealable tables of a database without the column yet."""
    return {
        (table, row_id): None
        for table in SEALABLE
        for (row_id,) in _rows(database, f"SELECT id FROM {table}")
    }

"""Sealing, on every backend: the rows of an is_encrypted key hold sealed text where
values go (base, default, overrides and what they revert to, history values, diff and
rows written), the repositories hand back the plain values, and rotation rewraps the
data keys without touching a history row. Whether a column is sealed is known from the
row (`sealed_with`) and the statement (`Sql.sealed`), never from the text: text that
looks sealed, in any column of any row, reads back as it was written."""

from __future__ import annotations

import re

import pytest

from switchyard.domain.errors import FailedPrecondition
from switchyard.domain.models import ChangeKind, HistoryAction
from switchyard.store import SqlStore
from switchyard.store.configs import FIND_CONFIG
from switchyard.store.history import HISTORY_AFTER
from switchyard.store.keyring import Keyring, KeySource
from switchyard.store.overrides import LIST_OVERRIDES
from switchyard.store.sealing import ENVELOPE, SEALABLE, Sealer, check_keys, rotate_keys
from switchyard.store.sql import REGISTRY, Sql

from .test_contract import change, create, definition, override, record
from .test_oracle_sql import RENDERINGS

LOOKALIKES = (
    "enc:v1:x",
    '{"sealed":"enc:v1:x"}',
    "enc:v1:6f1c2b4e-0d5a-4c1e-9a57-0b3f1e2d4c6a:AAAA",
)

PLAIN = ("sealed-base-1", "sealed-default-2", "sealed-override-3", "sealed-revert-4")


async def _write(store: SqlStore) -> None:
    config = definition("db.password", is_encrypted=True, value=PLAIN[0], default_value=PLAIN[1])
    await create(store, config, definition("plain.key", value="plain-value"))
    async with store.transaction() as tx:
        await tx.overrides.upsert_override(
            override(config, "staging", PLAIN[2], revert_to_value=PLAIN[3])
        )
    await record(
        store,
        change(
            "db.password",
            "staging",
            old_value=PLAIN[3],
            new_value=PLAIN[2],
            value_diff=[{"op": "replace", "path": "", "value": PLAIN[2]}],
            rows_after={"pf_environment_config": {"config_value": PLAIN[2]}},
        ),
        change("db.password", action=HistoryAction.DELETE, old_value={"value": PLAIN[0]}),
        change("plain.key", old_value="a", new_value="b"),
    )


async def _raw(store: SqlStore) -> list[dict[str, object]]:
    """The rows as the database holds them, past the sealing session."""
    async with store.read() as reader:
        raw = reader.connection
        rows = [await raw.fetch_one(FIND_CONFIG, {"config_key": key}) for key in ("db.password",)]
        rows += await raw.fetch_all(LIST_OVERRIDES, {"config_key": "db.password"})
        rows += await raw.fetch_all(HISTORY_AFTER, {"after_revision": 0, "row_limit": 100})
    return [row for row in rows if row is not None]


async def test_an_encrypted_keys_rows_hold_no_plain_value(store: SqlStore) -> None:
    await _write(store)

    rows = await _raw(store)

    text = repr(rows)
    for plain in PLAIN:
        assert plain not in text, plain
    sealed = [r for r in rows if r["config_key"] == "db.password"]
    assert all(str(r["config_value"]).startswith(ENVELOPE) for r in sealed if "config_value" in r)
    plain_history = [r for r in rows if r["config_key"] == "plain.key"]
    assert plain_history[0]["new_value"] == '"b"'


async def test_the_repositories_read_the_plain_values_back(store: SqlStore) -> None:
    await _write(store)

    async with store.read() as reader:
        config = await reader.configs.get_config("db.password")
        (staging,) = await reader.overrides.list_overrides("db.password")
        entries = await reader.history.history_after(0, 100)

    assert (config.value, config.default_value) == PLAIN[:2]
    assert (staging.value, staging.revert_to_value) == PLAIN[2:]
    first = entries[0]
    assert (first.old_value, first.new_value) == (PLAIN[3], PLAIN[2])
    assert first.value_diff == [{"op": "replace", "path": "", "value": PLAIN[2]}]
    assert first.rows_after == {"pf_environment_config": {"config_value": PLAIN[2]}}
    assert entries[1].old_value == {"value": PLAIN[0]}
    assert entries[2].kind is ChangeKind.CONFIG and entries[2].new_value == "b"


async def test_rotation_rewraps_data_keys_and_leaves_the_history_as_it_was(
    store: SqlStore,
) -> None:
    await _write(store)
    before = await _raw(store)
    old = store.sealer.keyring(create=True)
    assert old is not None
    new = Keyring.generate()
    both = Keyring((*new.entries, *old.entries), source="both")

    rotated = SqlStore(store.pool, Sealer(KeySource.of(both)))
    rotation = await rotate_keys(rotated)

    assert (rotation.rewrapped, rotation.total) == (1, 1)
    after = await _raw(store)
    assert [r for r in after if "revision" in r] == [r for r in before if "revision" in r]
    only_new = SqlStore(store.pool, Sealer(KeySource.of(Keyring(new.entries, source="new"))))
    status = await check_keys(only_new)
    assert status.data_keys == {new.current_id: 1}
    async with only_new.read() as reader:
        assert (await reader.configs.get_config("db.password")).value == PLAIN[0]
        assert (await reader.history.history_after(0, 1))[0].new_value == PLAIN[2]


@pytest.mark.parametrize("text", LOOKALIKES)
async def test_text_that_looks_sealed_is_read_back_as_written(store: SqlStore, text: str) -> None:
    """In every column a caller fills, of a plain key and of an encrypted one."""
    plain = definition("plain.key", value={"sealed": text}, default_value=text, description=text)
    secret = definition("secret.key", is_encrypted=True, value="v", description=text)
    await create(store, plain, secret)
    async with store.transaction() as tx:
        await tx.overrides.upsert_override(override(plain, "staging", text, reason=text))
    fields = {"reason": text, "ticket": text, "approval_ticket": text, "client_address": text}
    await record(
        store,
        change("plain.key", new_value={"sealed": text}, old_value=text, **fields),
        change("secret.key", new_value="v", **fields),
        change(text, kind=ChangeKind.TOKEN, new_value={"owner": text}, **fields),
    )

    async with store.read() as reader:
        got = await reader.configs.get_config("plain.key")
        (staging,) = await reader.overrides.list_overrides("plain.key")
        entries = await reader.history.history_after(0, 100)
        secret_read = await reader.configs.get_config("secret.key")

    assert (got.value, got.default_value, got.description) == ({"sealed": text}, text, text)
    assert (staging.value, staging.reason) == (text, text)
    assert secret_read.description == text and secret_read.value == "v"
    assert [(e.reason, e.ticket, e.approval_ticket) for e in entries] == [(text, text, text)] * 3
    assert entries[0].new_value == {"sealed": text} and entries[0].old_value == text
    assert entries[2].key == text and entries[2].new_value == {"owner": text}


async def test_a_sealed_row_whose_value_was_replaced_does_not_open(store: SqlStore) -> None:
    """A row marked sealed holds only what the sealer wrote: anything else in a value
    column was put there past Switchyard, and reading it fails rather than passing it on."""
    await create(store, definition("db.password", is_encrypted=True, value="s3cret"))
    async with store.read() as reader:
        row = await reader.connection.fetch_one(FIND_CONFIG, {"config_key": "db.password"})
        assert row is not None and row["sealed_with"] is not None
        opening = store.sealer.session(reader.connection)
        for forged in ('"plain"', "enc:v1:other-key:AAAA"):
            with pytest.raises(FailedPrecondition, match="altered"):
                await opening.open_row(
                    SEALABLE["pf_system_config"], {**row, "config_value": forged}
                )


def _reads(sql: Sql, table: str, columns: tuple[str, ...]) -> bool:
    text = " ".join(sql.text.split())
    return bool(
        re.match(r"SELECT\b", text, re.IGNORECASE)
        and re.search(rf"\bFROM {table}\b", text)
        and any(re.search(rf"\b{column}\b", text) for column in columns)
    )


def test_every_statement_that_reads_values_declares_which_columns_may_be_sealed() -> None:
    assert RENDERINGS  # every store module is imported
    readers = [
        (sql, table)
        for sql in REGISTRY
        for table, columns in SEALABLE.items()
        if _reads(sql, table, columns.names)
    ]
    assert {table for _, table in readers} == set(SEALABLE)
    for sql, table in readers:
        assert sql.sealed == SEALABLE[table], f"{sql.name} reads values of {table}"


def test_a_statement_that_declares_sealed_columns_must_select_the_mark() -> None:
    with pytest.raises(ValueError, match="sealed_with"):
        Sql("test_forgets_the_mark", "SELECT config_value FROM t", SEALABLE["pf_system_config"])

"""Sealing, on every backend: the rows of an is_encrypted key hold sealed text where
values go (base, default, overrides and what they revert to, history values, diff and
rows written), the repositories hand back the plain values, and rotation rewraps the
data keys without touching a history row."""

from __future__ import annotations

from switchyard.domain.models import ChangeKind, HistoryAction
from switchyard.store import SqlStore
from switchyard.store.configs import FIND_CONFIG
from switchyard.store.history import HISTORY_AFTER
from switchyard.store.keyring import Keyring, KeySource
from switchyard.store.overrides import LIST_OVERRIDES
from switchyard.store.sealing import ENVELOPE, Sealer, check_keys, rotate_keys

from .test_contract import change, create, definition, override, record

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

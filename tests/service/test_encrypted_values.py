"""Values of is_encrypted keys at rest, through the use cases on a real SQLite file: the
database file (and its write-ahead log) never holds their plain text, rotation rewraps
every data key and the values read back once the old master key is gone, and a missing,
wrong or absent key fails clearly."""

from __future__ import annotations

import base64
import sqlite3
import stat
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from switchyard.domain.models import (
    ConfigDefinition,
    ConfigType,
    HistoryEntry,
    HistoryQuery,
    PageRequest,
    Template,
    Validation,
)
from switchyard.service.config import ConfigService
from switchyard.service.context import WriteContext
from switchyard.store import SqlStore, migrate, open_store
from switchyard.store.keyring import Keyring, KeySource
from switchyard.store.sealing import check_keys, rotate_keys

CTX = WriteContext(actor=LOCAL_OPERATOR, reason="encryption test")
SECRETS = (
    "base-correct-horse-battery-staple",
    "default-tr0ub4dor-and-3",
    "override-hunter2-production",
    "temporary-swordfish-for-an-hour",
    "later-base-open-sesame",
)


def keyring(*entries: tuple[str, int]) -> Keyring:
    """A keyring of fixed test keys: (key id, byte the 32-byte key repeats)."""
    text = ",".join(f"{kid}:{base64.b64encode(bytes([b]) * 32).decode()}" for kid, b in entries)
    return Keyring.parse(text, source="the test keyring")


KEYRING_A = keyring(("ka", 1))


async def opened(path: Path, keys: KeySource) -> SqlStore:
    store = await open_store(f"sqlite:///{path}", keys=keys)
    await migrate(store)
    return store


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    return tmp_path / "sealed.db"


@pytest.fixture
async def service(database: Path) -> AsyncIterator[ConfigService]:
    store = await opened(database, KeySource.of(KEYRING_A))
    config = ConfigService(store)
    await config.start()
    try:
        yield config
    finally:
        await config.close()
        await store.close()


def secret_key(key: str, **fields: Any) -> ConfigDefinition:
    return ConfigDefinition(
        key=key, type=ConfigType.STRING, category="credentials", is_encrypted=True, **fields
    )


async def history(config: ConfigService, key: str) -> list[HistoryEntry]:
    page, _ = await config.get_history(HistoryQuery(key=key), PageRequest(size=100))
    return list(page.items)


def file_bytes(database: Path) -> bytes:
    """Everything SQLite keeps of the database on disk: the file, the write-ahead log
    and its index."""
    return b"".join(
        path.read_bytes()
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm"))
        if path.exists()
    )


async def write_every_kind_of_value(config: ConfigService) -> None:
    """Base value, default, an override, a temporary override that keeps the standing
    one to revert to, a later base value, a metadata update and a rollback: every column
    and history row that holds a value."""
    await config.create_config(
        secret_key("db.password", value=SECRETS[0], default_value=SECRETS[1]), CTX
    )
    await config.set_value("db.password", SECRETS[2], "production", CTX)
    expires = datetime.now(UTC) + timedelta(hours=1)
    await config.set_value("db.password", SECRETS[3], "production", CTX, expires_at=expires)
    await config.set_value("db.password", SECRETS[4], None, CTX)
    await config.update_config(
        secret_key("db.password", description="rotated quarterly"), ["description"], None, CTX
    )
    await config.rollback("db.password", None, CTX)  # back to SECRETS[0]
    await config.create_config(
        ConfigDefinition(
            key="plain.marker", type=ConfigType.STRING, category="x", value="plain-marker-text"
        ),
        CTX,
    )


async def test_the_database_file_never_holds_the_plain_text(
    service: ConfigService, database: Path
) -> None:
    await write_every_kind_of_value(service)

    # Read back in this process: the plain text, everywhere.
    assert (await service.get_value("db.password", None)).value.value == SECRETS[0]
    production = await service.get_value("db.password", "production")
    assert production.value.value == SECRETS[3]
    definition, overrides, _ = await service.get_config("db.password")
    assert definition.default_value == SECRETS[1]
    assert overrides[0].revert_to_value == SECRETS[2]
    recorded = {
        str(v)
        for entry in await history(service, "db.password")
        for v in (entry.old_value, entry.new_value, entry.value_diff)
    }
    assert all(any(secret in text for text in recorded) for secret in SECRETS)

    on_disk = file_bytes(database)
    assert b"plain-marker-text" in on_disk  # the check sees what is stored in clear
    for secret in SECRETS:
        assert secret.encode() not in on_disk, secret


async def test_a_deleted_keys_history_stays_sealed(service: ConfigService, database: Path) -> None:
    await service.create_config(secret_key("api.token", value=SECRETS[0]), CTX)
    await service.set_value("api.token", SECRETS[2], "staging", CTX)

    await service.delete_config("api.token", None, CTX)

    deletion = (await history(service, "api.token"))[0]
    assert isinstance(deletion.old_value, dict)
    assert deletion.old_value["value"] == SECRETS[0]
    for secret in (SECRETS[0], SECRETS[2]):
        assert secret.encode() not in file_bytes(database)


async def test_rotation_rewraps_every_data_key_and_values_read_back_without_the_old_key(
    service: ConfigService, database: Path
) -> None:
    await write_every_kind_of_value(service)
    await service.create_config(secret_key("smtp.password", value="mail-secret-1"), CTX)
    await service.set_value("smtp.password", "mail-secret-2", "staging", CTX)
    before = await history(service, "db.password") + await history(service, "smtp.password")
    sealed_history = _raw(
        database, "SELECT old_value, new_value, value_diff FROM pf_config_history"
    )

    both = await opened(database, KeySource.of(keyring(("kb", 2), ("ka", 1))))
    seen: list[tuple[int, int]] = []
    try:
        rotation = await rotate_keys(both, progress=lambda done, total: seen.append((done, total)))
        again = await rotate_keys(both)
    finally:
        await both.close()

    assert (rotation.current_id, rotation.rewrapped, rotation.total) == ("kb", 2, 2)
    assert seen[-1] == (2, 2)
    assert (again.rewrapped, again.total) == (0, 2)
    assert _raw(database, "SELECT DISTINCT key_id FROM pf_value_keys") == [("kb",)]
    # The history is append-only: rotation left its rows as they were.
    assert _raw(database, "SELECT old_value, new_value, value_diff FROM pf_config_history") == (
        sealed_history
    )

    only_new = await opened(database, KeySource.of(keyring(("kb", 2))))
    try:
        status = await check_keys(only_new)
        config = ConfigService(only_new)
        await config.start()
        assert (status.current_id, status.data_keys, status.behind) == ("kb", {"kb": 2}, 0)
        assert (await config.get_value("db.password", None)).value.value == SECRETS[0]
        assert (await config.get_value("db.password", "production")).value.value == SECRETS[3]
        assert (await config.get_value("smtp.password", "staging")).value.value == "mail-secret-2"
        after = await history(config, "db.password") + await history(config, "smtp.password")
        assert [(e.old_value, e.new_value, e.value_diff) for e in after] == [
            (e.old_value, e.new_value, e.value_diff) for e in before
        ]
    finally:
        await only_new.close()


async def test_a_missing_master_key_stops_start_up_and_reads(
    service: ConfigService, database: Path
) -> None:
    await service.create_config(secret_key("db.password", value=SECRETS[0]), CTX)

    other = await opened(database, KeySource.of(keyring(("kb", 2))))
    try:
        with pytest.raises(FailedPrecondition) as missing:
            await check_keys(other)
        assert "'ka'" in missing.value.message and "does not hold" in missing.value.message
        with pytest.raises(FailedPrecondition):
            await ConfigService(other).get_value("db.password", None)
    finally:
        await other.close()


async def test_a_wrong_master_key_under_the_same_id_is_refused(
    service: ConfigService, database: Path
) -> None:
    await service.create_config(secret_key("db.password", value=SECRETS[0]), CTX)

    wrong = await opened(database, KeySource.of(keyring(("ka", 9))))
    try:
        with pytest.raises(FailedPrecondition, match="does not decrypt"):
            await check_keys(wrong)
    finally:
        await wrong.close()


async def test_with_no_key_configured_an_encrypted_key_is_refused_and_nothing_changes(
    database: Path,
) -> None:
    store = await opened(database, KeySource.none())
    try:
        config = ConfigService(store)
        revision = await config.start()

        with pytest.raises(FailedPrecondition) as refused:
            await config.create_config(secret_key("db.password", value=SECRETS[0]), CTX)

        assert "SWITCHYARD_ENCRYPTION_KEYS" in refused.value.message
        with pytest.raises(FailedPrecondition):  # even with no value yet
            await config.create_config(secret_key("db.password"), CTX)
        with pytest.raises(NotFound):
            await config.get_config("db.password")
        assert await config.start() == revision
        # Keys that are not encrypted need no keyring; marking one encrypted does.
        await config.create_config(
            ConfigDefinition(key="plain", type=ConfigType.NUMBER, category="x", value=1), CTX
        )
        with pytest.raises(FailedPrecondition, match="SWITCHYARD_ENCRYPTION_KEYS"):
            await config.update_config(secret_key("plain"), ["is_encrypted"], None, CTX)
        assert not (await config.get_config("plain"))[0].is_encrypted
    finally:
        await store.close()


async def test_a_sealed_value_copied_to_another_row_does_not_decrypt(
    service: ConfigService, database: Path
) -> None:
    await service.create_config(secret_key("db.password", value=SECRETS[0]), CTX)
    await service.set_value("db.password", SECRETS[2], "staging", CTX)

    with sqlite3.connect(database) as db:  # someone with write access to the database
        db.execute(
            "UPDATE pf_environment_config SET config_value = "
            "(SELECT config_value FROM pf_system_config WHERE config_key = 'db.password')"
        )
    service.cache.clear(service.revision)

    with pytest.raises(FailedPrecondition, match="does not decrypt"):
        await service.get_value("db.password", "staging")


async def test_the_embedded_default_makes_a_key_file_beside_the_database_on_first_need(
    database: Path,
) -> None:
    store = await open_store(f"sqlite:///{database}")  # no keys given: the embedded default
    await migrate(store)
    key_file = database.with_name(database.name + ".keys")
    try:
        config = ConfigService(store)
        await config.create_config(
            ConfigDefinition(key="plain", type=ConfigType.NUMBER, category="x", value=1), CTX
        )
        assert not key_file.exists()

        await config.create_config(secret_key("db.password", value=SECRETS[0]), CTX)

        assert key_file.exists()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        await store.close()

    reopened = await open_store(f"sqlite:///{database}")
    try:
        await check_keys(reopened)
        value = await ConfigService(reopened).get_value("db.password", None)
        assert value.value.value == SECRETS[0]
    finally:
        await reopened.close()


async def test_marking_a_key_encrypted_seals_its_overrides(
    service: ConfigService, database: Path
) -> None:
    await service.create_config(
        ConfigDefinition(key="db.user", type=ConfigType.STRING, category="x", value="app"), CTX
    )
    await service.set_value("db.user", "override-marker-text", "staging", CTX)

    await service.update_config(secret_key("db.user"), ["is_encrypted"], None, CTX)

    rows = _raw(database, "SELECT config_value FROM pf_environment_config")
    assert all("override-marker-text" not in str(row) for row in rows)
    assert (await service.get_value("db.user", "staging")).value.value == "override-marker-text"

    # Unmarking it again would store its values in clear: refused while one looks secret.
    await service.set_value("db.user", "AKIAIOSFODNN7EXAMPLE", "production", CTX)
    with pytest.raises(InvalidArgument, match="looks like an AWS access key"):
        await service.update_config(
            ConfigDefinition(key="db.user", type=ConfigType.STRING, category="x"),
            ["is_encrypted"],
            None,
            CTX,
        )
    definition, _, _ = await service.get_config("db.user")
    assert definition.is_encrypted


async def test_encrypted_keys_stay_out_of_templates_windows_and_allowed_values(
    service: ConfigService,
) -> None:
    await service.create_config(secret_key("db.password", value=SECRETS[0]), CTX)
    revision = service.revision

    with pytest.raises(InvalidArgument) as template:
        await service.upsert_template(
            Template(name="creds", template_type="x", config_values={"db.password": "x"}), CTX
        )
    with pytest.raises(InvalidArgument) as allowed:
        await service.create_config(
            secret_key(
                "db.choice", validation=Validation(allowed_values=("red", "blue")), value="red"
            ),
            CTX,
        )

    assert "template.config_values.db.password" in _fields(template.value)
    assert "config.validation.allowed_values" in _fields(allowed.value)
    assert service.revision == revision


async def test_the_shared_cache_never_holds_an_encrypted_value(database: Path) -> None:
    store = await opened(database, KeySource.of(KEYRING_A))
    shared = _RecordingSharedCache()
    try:
        config = ConfigService(store, shared=shared)  # type: ignore[arg-type]
        await config.start()
        await config.create_config(secret_key("db.password", value=SECRETS[0]), CTX)
        await config.create_config(
            ConfigDefinition(key="plain", type=ConfigType.NUMBER, category="x", value=1), CTX
        )

        assert (await config.get_value("db.password", None)).value.value == SECRETS[0]
        assert (await config.get_value("plain", None)).value.value == 1

        assert [name for name, _ in shared.puts] == ["plain"]
        await config.close()
    finally:
        await store.close()


class _RecordingSharedCache:
    """Stands in for Redis: remembers what was put, answers every get with a miss."""

    available = True

    def __init__(self) -> None:
        self.puts: list[tuple[str, str]] = []

    async def get(self, name: str, scope: str) -> None:
        return None

    async def put(self, name: str, scope: str, payload: str, *, revision: int, ttl: float) -> None:
        self.puts.append((name, payload))

    async def invalidate(self, names: Sequence[str]) -> None:
        return None


def _fields(error: InvalidArgument) -> set[str]:
    return {v.field for v in error.violations}


def _raw(database: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as db:
        return list(db.execute(query))

"""Encryption at rest of the values of `is_encrypted` keys (envelope encryption).

Each config key that is (or was) marked is_encrypted has a data key of its own, a random
AES-256 key kept in `pf_value_keys` only wrapped by a master key from the keyring
(`store.keyring`). Every value of the key that reaches a row is sealed with its data key
(AES-GCM, a random 96-bit nonce each time) into text that names the data key:

    enc:v1:<key_ref>:<base64url(nonce | ciphertext | tag)>

Columns that must hold JSON (`value_diff`, `rows_after`, `request_body`) hold
`{"sealed":"enc:v1:..."}` instead.

Whether a column is sealed is never read from its text, which a caller may have typed:
each table declares the columns that hold values (`SealedColumns`, below), and a row
whose values were sealed says so in its `sealed_with` column, the key_ref of the data
key that sealed them, which only the sealing writer sets. Every other column, and every
column of a row whose `sealed_with` is NULL, is read as it is stored.

The associated data binds each ciphertext to its place (the column, the config key, the
environment): one copied to another key, layer or column does not decrypt.

Rotation rewraps the data keys under the current master key; the sealed values, the
append-only history among them, never change.

Sealing happens in the repositories that write values (configs, overrides, history,
change requests). Unsealing is done for them by `SealingSession`, which every row they
read passes through, for the statements that declare sealable columns; the plain text
exists only in this process's memory.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from switchyard.domain.errors import FailedPrecondition
from switchyard.store.dialect import Dialect
from switchyard.store.keyring import KEY_BYTES, NONCE_BYTES, SETTINGS_HINT, Keyring, KeySource
from switchyard.store.session import Binds, Lists, Row, Session
from switchyard.store.sql import SEALED_WITH, SealedColumns, Sql

if TYPE_CHECKING:
    from switchyard.store.base import SqlStore

ENVELOPE = "enc:v1:"
_DOCUMENT_MEMBER = "sealed"
_DATA_KEYS_KEPT = 10_000

# The columns that hold a config key's values, table by table: the only columns that are
# ever sealed, and only in rows whose `sealed_with` is set.
CONFIG_VALUES = SealedColumns(values=("config_value", "default_value"))
OVERRIDE_VALUES = SealedColumns(values=("config_value", "revert_to_value"))
HISTORY_VALUES = SealedColumns(
    values=("old_value", "new_value"), documents=("value_diff", "rows_after")
)
REQUEST_VALUES = SealedColumns(documents=("request_body",))
SEALABLE: dict[str, SealedColumns] = {
    "pf_system_config": CONFIG_VALUES,
    "pf_environment_config": OVERRIDE_VALUES,
    "pf_config_history": HISTORY_VALUES,
    "pf_change_requests": REQUEST_VALUES,
}
"""Every table with sealable columns, and which they are."""

FIND_VALUE_KEY = Sql(
    "find_value_key",
    """SELECT key_ref, config_key, key_id, wrapped_key FROM pf_value_keys
    WHERE config_key = :config_key""",
)
GET_VALUE_KEY = Sql(
    "get_value_key",
    """SELECT key_ref, config_key, key_id, wrapped_key FROM pf_value_keys
    WHERE key_ref = :key_ref""",
)
INSERT_VALUE_KEY = Sql(
    "insert_value_key",
    """INSERT INTO pf_value_keys (key_ref, config_key, key_id, wrapped_key, created_at)
    VALUES (:key_ref, :config_key, :key_id, :wrapped_key, :created_at)""",
)
ALL_VALUE_KEYS = Sql(
    "all_value_keys",
    "SELECT key_ref, config_key, key_id, wrapped_key FROM pf_value_keys ORDER BY key_ref",
)
VALUE_KEYS_TO_ROTATE = Sql(
    "value_keys_to_rotate",
    """SELECT key_ref, config_key, key_id, wrapped_key FROM pf_value_keys
    WHERE key_id <> :key_id ORDER BY key_ref""",
)
REWRAP_VALUE_KEY = Sql(
    "rewrap_value_key",
    """UPDATE pf_value_keys SET key_id = :key_id, wrapped_key = :wrapped_key,
    rotated_at = :rotated_at
    WHERE key_ref = :key_ref AND key_id = :old_key_id""",
)
CONFIG_IS_ENCRYPTED = Sql(
    "config_is_encrypted",
    "SELECT is_encrypted FROM pf_system_config WHERE config_key = :config_key",
)


def _wrap_aad(key_ref: str, config_key: str, key_id: str) -> bytes:
    return f"pf_value_keys\x1f{key_ref}\x1f{config_key}\x1f{key_id}".encode()


def _value_aad(column: str, config_key: str, environment: str | None, key_ref: str) -> bytes:
    return f"{column}\x1f{config_key}\x1f{environment or ''}\x1f{key_ref}".encode()


class Sealer:
    """One per store: where the keyring comes from, and the data keys unwrapped so far.
    A data key never changes (rotation changes only its wrapping), so an unwrapped one is
    kept for the life of the process, by the key_ref that sealed values name."""

    def __init__(self, keys: KeySource | None = None) -> None:
        self.keys = keys if keys is not None else KeySource.none()
        self._data_keys: OrderedDict[str, AESGCM] = OrderedDict()

    def session(self, session: Session) -> SealingSession:
        return SealingSession(session, self)

    def keyring(self, *, create: bool = False) -> Keyring | None:
        return self.keys.keyring(create=create)

    def remember(self, key_ref: str, cipher: AESGCM) -> None:
        self._data_keys[key_ref] = cipher
        while len(self._data_keys) > _DATA_KEYS_KEPT:
            self._data_keys.popitem(last=False)

    def known(self, key_ref: str) -> AESGCM | None:
        return self._data_keys.get(key_ref)

    def unwrap(self, row: Row) -> AESGCM:
        """The data key of a `pf_value_keys` row. Raises FailedPrecondition when no
        keyring holds its master key."""
        key_ref = str(row["key_ref"])
        cipher = self.known(key_ref)
        if cipher is not None:
            return cipher
        keyring = self.keyring()
        if keyring is None:
            raise FailedPrecondition(
                f"the values of config key {row['config_key']!r} are encrypted, but no "
                f"encryption key is configured ({self.keys.description}): {SETTINGS_HINT}"
            )
        data_key = keyring.unwrap(
            str(row["key_id"]),
            str(row["wrapped_key"]),
            _wrap_aad(key_ref, str(row["config_key"]), str(row["key_id"])),
            what=f"the data key of config key {row['config_key']!r}",
        )
        cipher = AESGCM(data_key)
        self.remember(key_ref, cipher)
        return cipher


class SealingSession:
    """A session whose rows come back with every sealed value opened (to its JSON text,
    as if it had been stored plain), and which seals values for the repositories that
    write them. Only the columns a statement declares (`Sql.sealed`) are opened, and
    only in rows whose `sealed_with` names a data key. Such rows must carry
    `config_key` (and `environment`, for tables that have one): the associated data
    names them."""

    def __init__(self, session: Session, sealer: Sealer) -> None:
        self._session = session
        self._sealer = sealer
        self.dialect: Dialect = session.dialect

    # --- Session ---------------------------------------------------------------------

    async def fetch_all(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> list[Row]:
        rows = await self._session.fetch_all(sql, binds, lists)
        if sql.sealed is None:
            return rows
        return [await self.open_row(sql.sealed, row) for row in rows]

    async def fetch_one(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> Row | None:
        rows = await self.fetch_all(sql, binds, lists)
        return rows[0] if rows else None

    async def execute(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> int:
        return await self._session.execute(sql, binds, lists)

    # --- sealing ---------------------------------------------------------------------

    async def seals(self, config_key: str, *, deleted: bool = False) -> bool:
        """Whether values of `config_key` are sealed when written: when the key is marked
        is_encrypted. When the key is gone because its deletion is being recorded
        (`deleted`), when it has a data key: it was encrypted once, and its last values
        must not go out in clear."""
        row = await self._session.fetch_one(CONFIG_IS_ENCRYPTED, {"config_key": config_key})
        if row is not None:
            return bool(row["is_encrypted"])
        if not deleted:
            return False
        return await self._session.fetch_one(FIND_VALUE_KEY, {"config_key": config_key}) is not None

    async def seal_columns(
        self,
        binds: dict[str, object],
        *,
        config_key: str,
        environment: str | None,
        columns: SealedColumns,
        encrypted: bool | None = None,
        values_of: str | None = None,
    ) -> dict[str, object]:
        """`binds` with the text of the table's value `columns` sealed when the key's
        values are sealed (`encrypted`; asked of the database when None), and with
        `sealed_with` set to the data key that sealed them (NULL when stored plain), so
        that readers know it from the row. NULLs stay NULL. The key's data key is made on
        the first write of an encrypted key, value or not, so a key cannot be marked
        is_encrypted where no keyring is configured: that raises FailedPrecondition.
        `values_of` names the config key whose values a row of another object carries (a
        change request's, say): its data key seals them, bound to this row's own key."""
        owner = values_of or config_key
        if encrypted is None:
            encrypted = await self.seals(owner)
        if not encrypted:
            return {**binds, SEALED_WITH: None}
        key_ref, cipher = await self._data_key(owner)
        sealed = {**binds, SEALED_WITH: key_ref}
        for column in columns.names:
            text = sealed.get(column)
            if text is None:
                continue
            assert isinstance(text, str), column
            nonce = os.urandom(NONCE_BYTES)
            aad = _value_aad(column, config_key, environment, key_ref)
            body = base64.urlsafe_b64encode(nonce + cipher.encrypt(nonce, text.encode(), aad))
            envelope = f"{ENVELOPE}{key_ref}:{body.decode('ascii')}"
            sealed[column] = (
                json.dumps({_DOCUMENT_MEMBER: envelope}, separators=(",", ":"))
                if column in columns.documents
                else envelope
            )
        return sealed

    async def _data_key(self, config_key: str) -> tuple[str, AESGCM]:
        """The key's data key, made (and wrapped under the current master key) the first
        time one of its values is sealed. Writers are serialised, so two cannot both
        make one; the UNIQUE constraint would refuse the second anyway."""
        row = await self._session.fetch_one(FIND_VALUE_KEY, {"config_key": config_key})
        if row is not None:
            return str(row["key_ref"]), self._sealer.unwrap(row)
        keyring = self._sealer.keyring(create=True)
        if keyring is None:
            raise FailedPrecondition(
                f"config key {config_key!r} is marked is_encrypted, but no encryption key "
                f"is configured: {SETTINGS_HINT}"
            )
        key_ref = str(uuid.uuid4())
        data_key = os.urandom(KEY_BYTES)
        key_id, wrapped = keyring.wrap(data_key, _wrap_aad(key_ref, config_key, keyring.current_id))
        await self._session.execute(
            INSERT_VALUE_KEY,
            {
                "key_ref": key_ref,
                "config_key": config_key,
                "key_id": key_id,
                "wrapped_key": wrapped,
                "created_at": datetime.now(UTC),
            },
        )
        cipher = AESGCM(data_key)
        self._sealer.remember(key_ref, cipher)
        return key_ref, cipher

    # --- opening -------------------------------------------------------------------

    async def open_row(self, columns: SealedColumns, row: Row) -> Row:
        """`row` with its sealed value `columns` opened, when its `sealed_with` names the
        data key that sealed them; as it is otherwise. Raises FailedPrecondition when a
        column does not open (no keyring holds its data key's master key, the data key
        is gone, or the text was altered or copied from another place)."""
        if SEALED_WITH not in row:
            raise ValueError(f"a row read for its sealable columns lacks {SEALED_WITH}")
        key_ref = row[SEALED_WITH]
        if key_ref is None:
            return row
        opened = dict(row)
        for column in columns.names:
            if row.get(column) is not None:
                opened[column] = await self._open(
                    column, row, str(key_ref), document=column in columns.documents
                )
        return opened

    async def _open(self, column: str, row: Row, key_ref: str, *, document: bool) -> str:
        config_key = row.get("config_key")
        if not isinstance(config_key, str):
            raise FailedPrecondition(f"a sealed {column} was read without its config_key")
        environment = row.get("environment")
        envelope = _envelope(row[column], document=document)
        named, _, body = envelope.removeprefix(ENVELOPE).partition(":")
        if not envelope.startswith(ENVELOPE) or named != key_ref:
            raise FailedPrecondition(
                f"the stored {column} of config key {config_key!r} is not sealed with data "
                f"key {key_ref!r}, which its row names: it was altered"
            )
        cipher = self._sealer.known(key_ref)
        if cipher is None:
            found = await self._session.fetch_one(GET_VALUE_KEY, {"key_ref": key_ref})
            if found is None:
                raise FailedPrecondition(
                    f"the stored {column} of config key {config_key!r} is sealed with data "
                    f"key {key_ref!r}, which pf_value_keys does not hold"
                )
            cipher = self._sealer.unwrap(found)
        try:
            blob = base64.urlsafe_b64decode(body)
            plain = cipher.decrypt(
                blob[:NONCE_BYTES],
                blob[NONCE_BYTES:],
                _value_aad(column, config_key, environment, key_ref),
            )
        except (InvalidTag, binascii.Error, ValueError):
            raise FailedPrecondition(
                f"the stored {column} of config key {config_key!r} does not decrypt: it was "
                "altered, or copied from another key, layer or column"
            ) from None
        return plain.decode()


def _envelope(value: object, *, document: bool) -> str:
    """The envelope text a sealed column holds: the column itself, or for a column that
    must hold JSON, the one member of the object it holds (python-oracledb may hand
    that over parsed). Raises FailedPrecondition for anything else."""
    if not document:
        return str(value)
    parsed: object = value
    if not isinstance(parsed, dict):
        try:
            parsed = json.loads(str(value))
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and len(parsed) == 1:
        inner = parsed.get(_DOCUMENT_MEMBER)
        if isinstance(inner, str):
            return inner
    raise FailedPrecondition("a sealed document column holds no sealed text: it was altered")


# --- the keyring against the database ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """How many data keys each master key wraps."""

    current_id: str | None
    data_keys: dict[str, int]

    @property
    def behind(self) -> int:
        """Data keys wrapped by a master key other than the current one."""
        return sum(n for key_id, n in self.data_keys.items() if key_id != self.current_id)


async def check_keys(store: SqlStore) -> KeyStatus:
    """Unwraps every data key with the configured keyring, so that a missing or wrong
    master key stops start-up instead of failing reads later. Raises FailedPrecondition
    naming what is missing."""
    async with store.read() as reader:
        rows = await reader.connection.fetch_all(ALL_VALUE_KEYS)
    keyring = store.sealer.keyring() if rows else None
    counts: dict[str, int] = {}
    for row in rows:
        store.sealer.unwrap(row)
        counts[str(row["key_id"])] = counts.get(str(row["key_id"]), 0) + 1
    return KeyStatus(keyring.current_id if keyring else None, counts)


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `rotate_keys` did: data keys rewrapped under `current_id`, of `total`."""

    current_id: str
    rewrapped: int
    total: int


async def rotate_keys(
    store: SqlStore, *, progress: Callable[[int, int], None] | None = None
) -> Rotation:
    """Rewraps every data key not under the keyring's current master key, in one
    transaction: all or nothing, so an interrupted rotation leaves each data key wrapped
    by the key it had. There is one data key per encrypted config key, few enough for one
    transaction, and the writers' lock keeps a server from making one under the old key
    meanwhile. `progress(done, total)` is told after each data key. Raises
    FailedPrecondition when no keyring is configured or one cannot be unwrapped."""
    keyring = store.sealer.keyring()
    async with store.transaction() as tx:
        session = tx.connection
        total = len(await session.fetch_all(ALL_VALUE_KEYS))
        if keyring is None:
            if not total:
                return Rotation("", 0, 0)  # nothing encrypted, nothing to rotate
            raise FailedPrecondition(
                f"no encryption key is configured ({store.sealer.keys.description}): "
                f"{SETTINGS_HINT}"
            )
        current = keyring.current_id
        rows = await session.fetch_all(VALUE_KEYS_TO_ROTATE, {"key_id": current})
        if progress is not None:
            progress(total - len(rows), total)
        now = datetime.now(UTC)
        for done, row in enumerate(rows, start=total - len(rows) + 1):
            key_ref, config_key = str(row["key_ref"]), str(row["config_key"])
            data_key = keyring.unwrap(
                str(row["key_id"]),
                str(row["wrapped_key"]),
                _wrap_aad(key_ref, config_key, str(row["key_id"])),
                what=f"the data key of config key {config_key!r}",
            )
            key_id, wrapped = keyring.wrap(data_key, _wrap_aad(key_ref, config_key, current))
            await session.execute(
                REWRAP_VALUE_KEY,
                {
                    "key_ref": key_ref,
                    "key_id": key_id,
                    "wrapped_key": wrapped,
                    "rotated_at": now,
                    "old_key_id": row["key_id"],
                },
            )
            if progress is not None:
                progress(done, total)
    return Rotation(current, len(rows), total)


__all__ = [
    "CONFIG_VALUES",
    "ENVELOPE",
    "HISTORY_VALUES",
    "OVERRIDE_VALUES",
    "REQUEST_VALUES",
    "SEALABLE",
    "KeyStatus",
    "Rotation",
    "Sealer",
    "SealingSession",
    "check_keys",
    "rotate_keys",
]

"""`pf_environment_config`: the values of keys in environments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from switchyard.domain.models import Override
from switchyard.store.rows import flag, from_json, to_json
from switchyard.store.sealing import OVERRIDE_VALUES, SealingSession
from switchyard.store.session import Row
from switchyard.store.sql import Sql, chunks

_COLUMNS = """id, environment, config_key, config_value, base_config_id, override_reason,
    is_temporary, expires_at, revert_to_value, starts_at, is_active, priority, created_at,
    created_by, updated_at, updated_by, override_approved_by, sealed_with"""
_ORDER = "ORDER BY config_key, environment, priority DESC"

LIST_OVERRIDES = Sql(
    "list_overrides",
    f"SELECT {_COLUMNS} FROM pf_environment_config WHERE config_key = :config_key {_ORDER}",
    OVERRIDE_VALUES,
)
LIST_OVERRIDES_FOR_KEYS = Sql(
    "list_overrides_for_keys",
    f"SELECT {_COLUMNS} FROM pf_environment_config WHERE config_key IN ({{keys}}) {_ORDER}",
    OVERRIDE_VALUES,
)
ALL_OVERRIDES = Sql(
    "all_overrides", f"SELECT {_COLUMNS} FROM pf_environment_config {_ORDER}", OVERRIDE_VALUES
)
FIND_OVERRIDE = Sql(
    "find_override",
    f"""SELECT {_COLUMNS} FROM pf_environment_config
    WHERE config_key = :config_key AND environment = :environment AND priority = :priority""",
    OVERRIDE_VALUES,
)
INSERT_OVERRIDE = Sql(
    "insert_override",
    f"""INSERT INTO pf_environment_config ({_COLUMNS})
    VALUES (:id, :environment, :config_key, :config_value, :base_config_id,
    :override_reason, :is_temporary, :expires_at, :revert_to_value, :starts_at, :is_active,
    :priority, :created_at, :created_by, :updated_at, :updated_by, :override_approved_by,
    :sealed_with)""",
)
UPDATE_OVERRIDE = Sql(
    "update_override",
    """UPDATE pf_environment_config SET config_value = :config_value,
    override_reason = :override_reason, is_temporary = :is_temporary,
    expires_at = :expires_at, revert_to_value = :revert_to_value, starts_at = :starts_at,
    is_active = :is_active, updated_at = :updated_at, updated_by = :updated_by,
    override_approved_by = :override_approved_by, sealed_with = :sealed_with
    WHERE config_key = :config_key AND environment = :environment AND priority = :priority""",
)
# What the scheduler must act on by `now`: scheduled overrides to activate, temporary
# ones to expire.
DUE_OVERRIDES = Sql(
    "due_overrides",
    f"""SELECT {_COLUMNS} FROM pf_environment_config
    WHERE (is_active = 0 AND starts_at <= :now) OR expires_at <= :now
    {_ORDER}""",
    OVERRIDE_VALUES,
)
NEXT_EXPIRY = Sql(
    "next_override_expiry",
    """SELECT MIN(expires_at) AS moment FROM pf_environment_config
    WHERE expires_at > :now""",
)
NEXT_START = Sql(
    "next_override_start",
    """SELECT MIN(starts_at) AS moment FROM pf_environment_config
    WHERE is_active = 0 AND starts_at > :now""",
)
DELETE_OVERRIDE = Sql("delete_override", "DELETE FROM pf_environment_config WHERE id = :id")


class SqlOverrideRepository:
    def __init__(self, session: SealingSession) -> None:
        self._session = session

    async def list_overrides(
        self, key: str, environments: Sequence[str] | None = None
    ) -> list[Override]:
        # A key has a handful of overrides: fetch them all and keep the wanted layers,
        # rather than vary the statement with the length of an environment chain.
        rows = await self._session.fetch_all(LIST_OVERRIDES, {"config_key": key})
        overrides = [self._override(row) for row in rows]
        if environments is None:
            return overrides
        wanted = set(environments)
        return [o for o in overrides if o.environment in wanted]

    async def list_overrides_for_keys(
        self, keys: Sequence[str], environments: Sequence[str]
    ) -> list[Override]:
        wanted = set(environments)
        found: list[Override] = []
        for chunk in chunks(list(dict.fromkeys(keys))):
            rows = await self._session.fetch_all(LIST_OVERRIDES_FOR_KEYS, lists={"keys": chunk})
            found.extend(o for o in map(self._override, rows) if o.environment in wanted)
        return found

    async def all_overrides(self) -> list[Override]:
        """Every override of every key."""
        return [self._override(row) for row in await self._session.fetch_all(ALL_OVERRIDES)]

    async def find_override(self, key: str, environment: str, priority: int) -> Override | None:
        row = await self._session.fetch_one(
            FIND_OVERRIDE, {"config_key": key, "environment": environment, "priority": priority}
        )
        return None if row is None else self._override(row)

    async def upsert_override(self, override: Override) -> None:
        """Writers are serialised (see `SqlStore.transaction`), so update-then-insert
        cannot race another writer to the same row."""
        binds = await self._session.seal_columns(
            self._binds(override),
            config_key=override.key,
            environment=override.environment,
            columns=OVERRIDE_VALUES,
        )
        if not await self._session.execute(UPDATE_OVERRIDE, binds):
            await self._session.execute(INSERT_OVERRIDE, binds)

    async def delete_override(self, override_id: str) -> None:
        await self._session.execute(DELETE_OVERRIDE, {"id": override_id})

    async def due_overrides(self, now: datetime) -> list[Override]:
        rows = await self._session.fetch_all(DUE_OVERRIDES, {"now": now})
        return [self._override(row) for row in rows]

    async def next_scheduled_change(self, now: datetime) -> datetime | None:
        """The earliest moment after `now` at which an override starts or expires."""
        read_time = self._session.dialect.read_time
        moments = []
        for sql in (NEXT_EXPIRY, NEXT_START):
            row = await self._session.fetch_one(sql, {"now": now})
            moment = read_time(row["moment"]) if row else None
            if moment is not None:
                moments.append(moment)
        return min(moments, default=None)

    def _override(self, row: Row) -> Override:
        read_time = self._session.dialect.read_time
        return Override(
            id=row["id"],
            key=row["config_key"],
            environment=row["environment"],
            value=from_json(row["config_value"]),
            priority=int(row["priority"]),
            is_active=flag(row["is_active"]),
            expires_at=read_time(row["expires_at"]),
            reason=row["override_reason"],
            base_config_id=row["base_config_id"],
            created_at=read_time(row["created_at"]),
            created_by=row["created_by"],
            updated_at=read_time(row["updated_at"]),
            updated_by=row["updated_by"],
            starts_at=read_time(row["starts_at"]),
            revert_to_value=from_json(row["revert_to_value"]),
            approved_by=row["override_approved_by"],
        )

    @staticmethod
    def _binds(override: Override) -> dict[str, object]:
        return {
            "id": override.id,
            "environment": override.environment,
            "config_key": override.key,
            "config_value": to_json(override.value),
            "base_config_id": override.base_config_id,
            "override_reason": override.reason,
            "is_temporary": override.is_temporary,
            "expires_at": override.expires_at,
            "is_active": override.is_active,
            "priority": override.priority,
            "created_at": override.created_at,
            "created_by": override.created_by,
            "updated_at": override.updated_at,
            "updated_by": override.updated_by,
            "starts_at": override.starts_at,
            "revert_to_value": to_json(override.revert_to_value),
            "override_approved_by": override.approved_by,
        }


__all__ = ["SqlOverrideRepository"]

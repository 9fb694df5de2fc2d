"""`pf_system_config`: key definitions and their base values."""

from __future__ import annotations

from collections.abc import Sequence

from switchyard.domain.errors import Conflict, InvalidArgument, NotFound
from switchyard.domain.keys import prefix_range
from switchyard.domain.models import (
    ConfigDefinition,
    ConfigQuery,
    ConfigType,
    Page,
    PageRequest,
    Validation,
)
from switchyard.store.rows import document, flag, from_json, optional_float, strings, to_json
from switchyard.store.sealing import CONFIG_VALUES, SealingSession
from switchyard.store.session import Row
from switchyard.store.sql import Sql, chunks

_COLUMNS = """id, config_key, config_value, config_type, category, subcategory,
    display_name, description, help_text, default_value, is_required, is_sensitive,
    is_encrypted, validation_rule, allowed_values, min_value, max_value, regex_pattern,
    is_active, is_editable, is_deletable, requires_restart, cache_ttl_seconds, depends_on,
    conflicts_with, created_at, created_by, updated_at, updated_by, version, sealed_with"""

FIND_CONFIG = Sql(
    "find_config",
    f"SELECT {_COLUMNS} FROM pf_system_config WHERE config_key = :config_key",
    CONFIG_VALUES,
)
GET_CONFIGS = Sql(
    "get_configs",
    f"SELECT {_COLUMNS} FROM pf_system_config WHERE config_key IN ({{keys}})",
    CONFIG_VALUES,
)


def _list_configs(name: str, keys: str) -> Sql:
    return Sql(
        name,
        f"""SELECT {_COLUMNS} FROM pf_system_config
    WHERE {keys}(:category IS NULL OR category = :category)
    AND (:subcategory IS NULL OR subcategory = :subcategory)
    AND (:include_inactive = 1 OR is_active = 1)
    AND (:after_key IS NULL OR config_key > :after_key)
    ORDER BY config_key
    {{row_limit}}""",
        CONFIG_VALUES,
    )


LIST_CONFIGS = _list_configs("list_configs", "")
# Keys under a prefix are a range of the key's index, [low, high) (`prefix_range`): exact
# and case-sensitive on both databases (binary comparison; Oracle sessions are set to
# it), where LIKE folds case on SQLite and grows a pattern with the prefix.
LIST_CONFIGS_BY_PREFIX = _list_configs(
    "list_configs_by_prefix",
    "config_key >= :key_low AND (:key_high IS NULL OR config_key < :key_high)\n    AND ",
)
INSERT_CONFIG = Sql(
    "insert_config",
    """INSERT INTO pf_system_config (id, config_key, config_value, config_type, category,
    subcategory, display_name, description, help_text, default_value, is_required,
    is_sensitive, is_encrypted, validation_rule, allowed_values, min_value, max_value,
    regex_pattern, is_active, is_editable, is_deletable, requires_restart,
    cache_ttl_seconds, depends_on, conflicts_with, created_at, created_by, updated_at,
    updated_by, version, sealed_with)
    VALUES (:id, :config_key, :config_value, :config_type, :category, :subcategory,
    :display_name, :description, :help_text, :default_value, :is_required, :is_sensitive,
    :is_encrypted, :validation_rule, :allowed_values, :min_value, :max_value,
    :regex_pattern, :is_active, :is_editable, :is_deletable, :requires_restart,
    :cache_ttl_seconds, :depends_on, :conflicts_with, :created_at, :created_by,
    :updated_at, :updated_by, :version, :sealed_with)""",
)
UPDATE_CONFIG = Sql(
    "update_config",
    """UPDATE pf_system_config SET config_value = :config_value, config_type = :config_type,
    category = :category, subcategory = :subcategory, display_name = :display_name,
    description = :description, help_text = :help_text, default_value = :default_value,
    is_required = :is_required, is_sensitive = :is_sensitive, is_encrypted = :is_encrypted,
    validation_rule = :validation_rule, allowed_values = :allowed_values,
    min_value = :min_value, max_value = :max_value, regex_pattern = :regex_pattern,
    is_active = :is_active, is_editable = :is_editable, is_deletable = :is_deletable,
    requires_restart = :requires_restart, cache_ttl_seconds = :cache_ttl_seconds,
    depends_on = :depends_on, conflicts_with = :conflicts_with, updated_at = :updated_at,
    updated_by = :updated_by, version = :version, sealed_with = :sealed_with
    WHERE config_key = :config_key AND version = :expected_version""",
)
DELETE_OVERRIDES_OF_CONFIG = Sql(
    "delete_overrides_of_config", "DELETE FROM pf_environment_config WHERE config_key = :config_key"
)
DELETE_CONFIG = Sql("delete_config", "DELETE FROM pf_system_config WHERE config_key = :config_key")


class SqlConfigRepository:
    def __init__(self, session: SealingSession) -> None:
        self._session = session

    async def find_config(self, key: str) -> ConfigDefinition | None:
        row = await self._session.fetch_one(FIND_CONFIG, {"config_key": key})
        return None if row is None else self._definition(row)

    async def get_config(self, key: str) -> ConfigDefinition:
        found = await self.find_config(key)
        if found is None:
            raise NotFound(f"config key {key!r} not found")
        return found

    async def get_configs(self, keys: Sequence[str]) -> dict[str, ConfigDefinition]:
        found: dict[str, ConfigDefinition] = {}
        for chunk in chunks(list(dict.fromkeys(keys))):
            for row in await self._session.fetch_all(GET_CONFIGS, lists={"keys": chunk}):
                definition = self._definition(row)
                found[definition.key] = definition
        return found

    async def list_configs(self, query: ConfigQuery, page: PageRequest) -> Page[ConfigDefinition]:
        binds: dict[str, object] = {
            "category": query.category,
            "subcategory": query.subcategory,
            "include_inactive": query.include_inactive,
            "after_key": _key_cursor(page.cursor),
            "row_limit": page.size + 1,
        }
        if query.key_prefix:
            low, high = prefix_range(query.key_prefix)
            binds.update(key_low=low, key_high=high)
        rows = await self._session.fetch_all(
            LIST_CONFIGS_BY_PREFIX if query.key_prefix else LIST_CONFIGS, binds
        )
        items = [self._definition(row) for row in rows[: page.size]]
        more = len(rows) > page.size
        return Page(items=items, next_cursor=items[-1].key if more and items else None)

    async def create_config(self, config: ConfigDefinition) -> None:
        await self._session.execute(INSERT_CONFIG, await self._sealed_binds(config))

    async def update_config(self, config: ConfigDefinition, *, expected_version: int) -> None:
        binds = await self._sealed_binds(config)
        touched = await self._session.execute(
            UPDATE_CONFIG, {**binds, "expected_version": expected_version}
        )
        if touched:
            return
        current = await self.get_config(config.key)
        raise Conflict(
            f"config key {config.key!r} is at version {current.version}, not {expected_version}",
            current_version=current.version,
        )

    async def delete_config(self, key: str) -> None:
        await self._session.execute(DELETE_OVERRIDES_OF_CONFIG, {"config_key": key})
        if not await self._session.execute(DELETE_CONFIG, {"config_key": key}):
            raise NotFound(f"config key {key!r} not found")

    def _definition(self, row: Row) -> ConfigDefinition:
        read_time = self._session.dialect.read_time
        allowed = from_json(row["allowed_values"])
        return ConfigDefinition(
            id=row["id"],
            key=row["config_key"],
            type=ConfigType(row["config_type"]),
            category=row["category"],
            subcategory=row["subcategory"],
            display_name=row["display_name"],
            description=row["description"],
            help_text=row["help_text"],
            value=from_json(row["config_value"]),
            default_value=from_json(row["default_value"]),
            validation=Validation(
                min_value=optional_float(row["min_value"]),
                max_value=optional_float(row["max_value"]),
                regex_pattern=row["regex_pattern"],
                allowed_values=tuple(allowed) if isinstance(allowed, list) else (),
                depends_on=strings(row["depends_on"]),
                conflicts_with=strings(row["conflicts_with"]),
                validation_rule=row["validation_rule"],
            ),
            is_required=flag(row["is_required"]),
            is_sensitive=flag(row["is_sensitive"]),
            is_encrypted=flag(row["is_encrypted"]),
            is_active=flag(row["is_active"]),
            is_editable=flag(row["is_editable"]),
            is_deletable=flag(row["is_deletable"]),
            requires_restart=flag(row["requires_restart"]),
            cache_ttl_seconds=int(row["cache_ttl_seconds"]),
            version=int(row["version"]),
            created_at=read_time(row["created_at"]),
            created_by=row["created_by"],
            updated_at=read_time(row["updated_at"]),
            updated_by=row["updated_by"],
        )

    async def _sealed_binds(self, config: ConfigDefinition) -> dict[str, object]:
        """The row's binds, its value and default sealed when the key is_encrypted."""
        return await self._session.seal_columns(
            self._binds(config),
            config_key=config.key,
            environment=None,
            columns=CONFIG_VALUES,
            encrypted=config.is_encrypted,
        )

    @staticmethod
    def _binds(config: ConfigDefinition) -> dict[str, object]:
        rules = config.validation
        return {
            "id": config.id,
            "config_key": config.key,
            "config_value": to_json(config.value),
            "config_type": config.type.value,
            "category": config.category,
            "subcategory": config.subcategory,
            "display_name": config.display_name,
            "description": config.description,
            "help_text": config.help_text,
            "default_value": to_json(config.default_value),
            "is_required": config.is_required,
            "is_sensitive": config.is_sensitive,
            "is_encrypted": config.is_encrypted,
            "validation_rule": rules.validation_rule,
            "allowed_values": document(list(rules.allowed_values))
            if rules.allowed_values
            else None,
            "min_value": rules.min_value,
            "max_value": rules.max_value,
            "regex_pattern": rules.regex_pattern,
            "is_active": config.is_active,
            "is_editable": config.is_editable,
            "is_deletable": config.is_deletable,
            "requires_restart": config.requires_restart,
            "cache_ttl_seconds": config.cache_ttl_seconds,
            "depends_on": document(list(rules.depends_on)) if rules.depends_on else None,
            "conflicts_with": (
                document(list(rules.conflicts_with)) if rules.conflicts_with else None
            ),
            "created_at": config.created_at,
            "created_by": config.created_by,
            "updated_at": config.updated_at,
            "updated_by": config.updated_by,
            "version": config.version,
        }


def _key_cursor(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    if not cursor:
        raise InvalidArgument.field("page_token", "is not a token this service issued")
    return cursor


__all__ = ["SqlConfigRepository"]

"""`pf_config_history`: every change, append-only. Nothing here updates or deletes a row."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import (
    BASE_LAYER,
    Change,
    ChangeKind,
    HistoryAction,
    HistoryEntry,
    HistoryQuery,
    JSONValue,
    Page,
    PageRequest,
)
from switchyard.store.rows import document, flag, from_json, to_json
from switchyard.store.sealing import HISTORY_VALUES, SealingSession
from switchyard.store.session import Row
from switchyard.store.sql import Sql

_COLUMNS = """id, revision, change_index, change_kind, change_timestamp, table_name,
    record_id, config_key, action, old_value, new_value, value_diff, change_reason,
    change_ticket, environment, override_priority, config_version, changed_by,
    changed_by_role, client_address, rollback_available, approved_by, approval_ticket,
    rows_after, sealed_with"""

INSERT_HISTORY = Sql(
    "insert_history",
    f"""INSERT INTO pf_config_history ({_COLUMNS})
    VALUES (:id, :revision, :change_index, :change_kind, :change_timestamp, :table_name,
    :record_id, :config_key, :action, :old_value, :new_value, :value_diff, :change_reason,
    :change_ticket, :environment, :override_priority, :config_version, :changed_by,
    :changed_by_role, :client_address, :rollback_available, :approved_by, :approval_ticket,
    :rows_after, :sealed_with)""",
)
_H_COLUMNS = ", ".join(f"h.{name.strip()}" for name in _COLUMNS.split(","))
# env_filter: 0 every layer, 1 the base layer only, 2 the environment named by :environment.
# The usernames of who changed and who approved are looked up for people to read; a user
# who is gone leaves them NULL.
LIST_HISTORY = Sql(
    "list_history",
    f"""SELECT {_H_COLUMNS}, cu.username AS changed_by_username,
    au.username AS approved_by_username
    FROM pf_config_history h
    LEFT JOIN pf_users cu ON cu.id = h.changed_by
    LEFT JOIN pf_users au ON au.id = h.approved_by
    WHERE (:config_key IS NULL OR h.config_key = :config_key)
    AND (:env_filter = 0 OR (:env_filter = 1 AND h.environment IS NULL)
         OR (:env_filter = 2 AND h.environment = :environment))
    AND h.revision > :after_revision
    AND h.change_kind IN ({{kinds}})
    AND (:cursor_revision IS NULL OR h.revision < :cursor_revision
         OR (h.revision = :cursor_revision AND h.change_index < :cursor_index))
    ORDER BY h.revision DESC, h.change_index DESC
    {{row_limit}}""",
    HISTORY_VALUES,
)
_SINCE_CREATION = """revision > (SELECT COALESCE(MAX(revision), 0) FROM pf_config_history
    WHERE config_key = :config_key AND change_kind = 'config' AND action = 'create'
    AND table_name = 'pf_system_config')"""
BASE_LAYER_HISTORY = Sql(
    "base_layer_history",
    f"""SELECT {_COLUMNS} FROM pf_config_history
    WHERE config_key = :config_key AND change_kind = 'config' AND rollback_available = 1
    AND environment IS NULL AND {_SINCE_CREATION}
    ORDER BY revision DESC, change_index DESC
    {{row_limit}}""",
    HISTORY_VALUES,
)
ENVIRONMENT_LAYER_HISTORY = Sql(
    "environment_layer_history",
    f"""SELECT {_COLUMNS} FROM pf_config_history
    WHERE config_key = :config_key AND change_kind = 'config' AND rollback_available = 1
    AND environment = :environment AND {_SINCE_CREATION}
    ORDER BY revision DESC, change_index DESC
    {{row_limit}}""",
    HISTORY_VALUES,
)
# Rows of one object of one kind at or after its latest `create` row: those with no
# `create` row of the same object after them. Compared on (revision, change_index), not on
# the revision alone, so a delete and a create in one transaction still part two lives.
OBJECT_HISTORY = Sql(
    "object_history",
    f"""SELECT {_COLUMNS} FROM pf_config_history h
    WHERE h.change_kind = :change_kind AND h.config_key = :config_key
    AND NOT EXISTS (SELECT 1 FROM pf_config_history c
        WHERE c.change_kind = h.change_kind AND c.config_key = h.config_key
        AND c.action = 'create'
        AND (c.revision > h.revision
             OR (c.revision = h.revision AND c.change_index > h.change_index)))
    ORDER BY h.revision DESC, h.change_index DESC
    {{row_limit}}""",
    HISTORY_VALUES,
)
HISTORY_AFTER = Sql(
    "history_after",
    f"""SELECT {_COLUMNS} FROM pf_config_history
    WHERE revision > :after_revision
    ORDER BY revision, change_index
    {{row_limit}}""",
    HISTORY_VALUES,
)
# Keyset paging over (revision, change_index): a large revision is read in parts, each
# going on from the last row read (and the whole history, page by page, for verify).
HISTORY_AFTER_ROW = Sql(
    "history_after_row",
    f"""SELECT {_COLUMNS} FROM pf_config_history
    WHERE revision >= :after_revision
    AND (revision > :after_revision OR change_index > :after_index)
    ORDER BY revision, change_index
    {{row_limit}}""",
    HISTORY_VALUES,
)
OLDEST_REVISION = Sql(
    "oldest_revision", "SELECT COALESCE(MIN(revision), 0) AS revision FROM pf_config_history"
)

_ALL_KINDS = tuple(kind.value for kind in ChangeKind)
_ADDRESS_WIDTH = 255


class SqlHistoryRepository:
    def __init__(self, session: SealingSession) -> None:
        self._session = session

    async def append(
        self, revision: int, changes: Sequence[Change], *, first_index: int = 0
    ) -> list[HistoryEntry]:
        now = datetime.now(UTC)
        entries = []
        for index, change in enumerate(changes, start=first_index):
            entry = HistoryEntry(
                id=str(uuid.uuid4()),
                revision=revision,
                change_index=index,
                kind=change.kind,
                table_name=change.table_name,
                record_id=change.record_id,
                key=change.key,
                environment=change.environment,
                action=change.action,
                old_value=change.old_value,
                new_value=change.new_value,
                value_diff=change.value_diff,
                reason=change.reason,
                ticket=change.ticket,
                changed_by=change.changed_by,
                changed_by_role=change.changed_by_role,
                client_address=change.client_address,
                changed_at=now,
                version=change.version,
                priority=change.priority,
                rollback_available=change.rollback_available,
                approved_by=change.approved_by,
                approval_ticket=change.approval_ticket,
                rows_after=change.rows_after,
            )
            owner = _values_of(entry)
            deleted = entry.action is HistoryAction.DELETE
            binds = await self._session.seal_columns(
                _binds(entry),
                config_key=entry.key,
                environment=entry.environment,
                columns=HISTORY_VALUES,
                encrypted=owner is not None and await self._session.seals(owner, deleted=deleted),
                values_of=owner,
            )
            await self._session.execute(INSERT_HISTORY, binds)
            entries.append(entry)
        return entries

    async def list_history(self, query: HistoryQuery, page: PageRequest) -> Page[HistoryEntry]:
        if query.environment is None:
            env_filter = 0
        elif query.environment == BASE_LAYER:
            env_filter = 1
        else:
            env_filter = 2
        cursor_revision, cursor_index = _history_cursor(page.cursor)
        kinds = tuple(k.value for k in query.kinds) or _ALL_KINDS
        rows = await self._session.fetch_all(
            LIST_HISTORY,
            {
                "config_key": query.key,
                "env_filter": env_filter,
                "environment": query.environment if env_filter == 2 else None,
                "after_revision": query.after_revision,
                "cursor_revision": cursor_revision,
                "cursor_index": cursor_index,
                "row_limit": page.size + 1,
            },
            lists={"kinds": kinds},
        )
        items = [self._entry(row) for row in rows[: page.size]]
        last = items[-1] if items and len(rows) > page.size else None
        return Page(
            items=items,
            next_cursor=None if last is None else f"{last.revision}:{last.change_index}",
        )

    async def layer_history(
        self, key: str, environment: str | None, *, offset: int, limit: int
    ) -> list[HistoryEntry]:
        """Only changes made since the key was (last) created: a key deleted and created
        again does not roll back into its former life."""
        binds: dict[str, object] = {"config_key": key, "row_limit": offset + limit}
        if environment is None:
            rows = await self._session.fetch_all(BASE_LAYER_HISTORY, binds)
        else:
            rows = await self._session.fetch_all(
                ENVIRONMENT_LAYER_HISTORY, {**binds, "environment": environment}
            )
        return [self._entry(row) for row in rows[offset:]]

    async def object_history(
        self, kind: ChangeKind, key: str, *, offset: int, limit: int
    ) -> list[HistoryEntry]:
        """Only changes made since the object was (last) created, its `create` row
        included: a flag deleted and created again does not roll back into its former
        life. When no `create` row is held (pruned), every row of the object is."""
        if limit <= 0:
            return []  # LIMIT 0 would do, but SQLite reads a negative LIMIT as "no limit"
        offset = max(offset, 0)
        rows = await self._session.fetch_all(
            OBJECT_HISTORY,
            {"change_kind": kind.value, "config_key": key, "row_limit": offset + limit},
        )
        return [self._entry(row) for row in rows[offset:]]

    async def history_after(
        self, after_revision: int, limit: int, *, after_index: int | None = None
    ) -> list[HistoryEntry]:
        """Rows of revisions after `after_revision`, oldest first, at most `limit` rows
        (a revision's rows may be cut at the limit: callers read on from the last row
        they have, giving its revision and `after_index`, its change_index). What
        followers and watchers read to catch up."""
        binds = {"after_revision": after_revision, "after_index": after_index, "row_limit": limit}
        statement = HISTORY_AFTER if after_index is None else HISTORY_AFTER_ROW
        rows = await self._session.fetch_all(statement, binds)
        return [self._entry(row) for row in rows]

    async def oldest_revision(self) -> int:
        row = await self._session.fetch_one(OLDEST_REVISION)
        return int(row["revision"]) if row else 0

    def _entry(self, row: Row) -> HistoryEntry:
        diff = from_json(row["value_diff"])
        changed_at = self._session.dialect.read_time(row["change_timestamp"])
        assert changed_at is not None
        return HistoryEntry(
            id=row["id"],
            revision=int(row["revision"]),
            change_index=int(row["change_index"]),
            kind=ChangeKind(row["change_kind"]),
            table_name=row["table_name"],
            record_id=row["record_id"],
            key=row["config_key"],
            environment=row["environment"],
            action=HistoryAction(row["action"]),
            old_value=from_json(row["old_value"]),
            new_value=from_json(row["new_value"]),
            value_diff=_patch(diff),
            reason=row["change_reason"],
            ticket=row["change_ticket"],
            changed_by=row["changed_by"],
            changed_by_role=row["changed_by_role"],
            client_address=row["client_address"],
            changed_at=changed_at,
            version=None if row["config_version"] is None else int(row["config_version"]),
            priority=None if row["override_priority"] is None else int(row["override_priority"]),
            rollback_available=flag(row["rollback_available"]),
            approved_by=row["approved_by"],
            approval_ticket=row["approval_ticket"],
            rows_after=_rows(from_json(row["rows_after"])),
            changed_by_username=row.get("changed_by_username"),
            approved_by_username=row.get("approved_by_username"),
        )


def _rows(rows: JSONValue) -> dict[str, JSONValue] | None:
    return rows if isinstance(rows, dict) else None


def _values_of(entry: HistoryEntry) -> str | None:
    """The config key whose values a history row carries, if any: a config change's own
    key, or the target of a change request that writes a config value."""
    if entry.kind is ChangeKind.CONFIG:
        return entry.key
    if entry.kind is ChangeKind.CHANGE_REQUEST:
        document = entry.new_value if isinstance(entry.new_value, dict) else entry.old_value
        if isinstance(document, dict) and document.get("kind") == ChangeKind.CONFIG:
            target = document.get("key")
            return target if isinstance(target, str) else None
    return None


def _patch(diff: JSONValue) -> list[dict[str, JSONValue]]:
    if not isinstance(diff, list):
        return []
    return [op for op in diff if isinstance(op, dict)]


def _binds(entry: HistoryEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "revision": entry.revision,
        "change_index": entry.change_index,
        "change_kind": entry.kind.value,
        "change_timestamp": entry.changed_at,
        "table_name": entry.table_name,
        "record_id": entry.record_id,
        "config_key": entry.key,
        "action": entry.action.value,
        "old_value": to_json(entry.old_value),
        "new_value": to_json(entry.new_value),
        "value_diff": document(entry.value_diff),
        "change_reason": entry.reason,
        "change_ticket": entry.ticket,
        "environment": entry.environment,
        "override_priority": entry.priority,
        "config_version": entry.version,
        "changed_by": entry.changed_by,
        "changed_by_role": entry.changed_by_role,
        # Informational, and whatever a peer string holds: kept to its column's width.
        "client_address": (entry.client_address or "")[:_ADDRESS_WIDTH],
        "rollback_available": entry.rollback_available,
        "approved_by": entry.approved_by,
        "approval_ticket": entry.approval_ticket,
        "rows_after": document(entry.rows_after),
    }


def _history_cursor(cursor: str | None) -> tuple[int | None, int | None]:
    if cursor is None:
        return None, None
    revision, _, index = cursor.partition(":")
    try:
        return int(revision), int(index)
    except ValueError:
        raise InvalidArgument.field(
            "page_token", "is not a token this service issued; start again without it"
        ) from None


__all__ = ["SqlHistoryRepository"]

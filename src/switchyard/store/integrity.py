"""What `switchyard verify` reads of a database: the facts of the revision spine, every
sealed row (each opened on its own, so that one that does not open is reported rather
than stopping the check), and the triggers that keep the history append-only.

The checks themselves are pure (`domain.integrity`); the service puts them together
(`service.integrity`).
"""

from __future__ import annotations

from switchyard.domain.errors import FailedPrecondition
from switchyard.domain.integrity import GUARDS, SEALED, Spine, Violation
from switchyard.store.revisions import CURRENT_REVISION
from switchyard.store.sealing import (
    CONFIG_VALUES,
    HISTORY_VALUES,
    OVERRIDE_VALUES,
    REQUEST_VALUES,
    SealingSession,
)
from switchyard.store.session import Row, Session
from switchyard.store.sql import SealedColumns, Sql

REPORTED = 1000
"""At most this many gaps, and as many unevenly numbered revisions, are read: a spine
broken in more places than that is reported in part."""
_PAGE = 500

SPINE_BOUNDS = Sql(
    "verify_spine_bounds",
    """SELECT COALESCE(MIN(revision), 0) AS oldest, COALESCE(MAX(revision), 0) AS newest,
    COUNT(DISTINCT revision) AS revision_count, COUNT(*) AS row_count
    FROM pf_config_history""",
)
KEPT_FROM = Sql(
    "verify_kept_from",
    "SELECT COALESCE(MAX(keep_from_revision), 0) AS kept_from FROM pf_history_retention",
)
# Each held revision with the one held before it: where they are not consecutive, the
# revisions between have no rows.
SPINE_GAPS = Sql(
    "verify_spine_gaps",
    """SELECT prev_revision, revision FROM (
        SELECT revision, LAG(revision) OVER (ORDER BY revision) AS prev_revision
        FROM (SELECT DISTINCT revision FROM pf_config_history) held) paired
    WHERE revision > prev_revision + 1
    ORDER BY revision
    {row_limit}""",
)
# (revision, change_index) is unique, so rows numbered from 0 to their count - 1 are
# numbered without a hole.
UNEVEN_REVISIONS = Sql(
    "verify_uneven_revisions",
    """SELECT revision, COUNT(*) AS row_count, MIN(change_index) AS first_index,
    MAX(change_index) AS last_index
    FROM pf_config_history
    GROUP BY revision
    HAVING MIN(change_index) <> 0 OR MAX(change_index) <> COUNT(*) - 1
    ORDER BY revision
    {row_limit}""",
)

# The sealed rows of each table, by id: read past the sealing session (each row is then
# opened on its own).
SEALED_CONFIGS = Sql(
    "verify_sealed_configs",
    """SELECT id, config_key, config_value, default_value, sealed_with FROM pf_system_config
    WHERE sealed_with IS NOT NULL AND (:after_id IS NULL OR id > :after_id)
    ORDER BY id
    {row_limit}""",
    CONFIG_VALUES,
)
SEALED_OVERRIDES = Sql(
    "verify_sealed_overrides",
    """SELECT id, config_key, environment, config_value, revert_to_value, sealed_with
    FROM pf_environment_config
    WHERE sealed_with IS NOT NULL AND (:after_id IS NULL OR id > :after_id)
    ORDER BY id
    {row_limit}""",
    OVERRIDE_VALUES,
)
SEALED_REQUESTS = Sql(
    "verify_sealed_requests",
    """SELECT id, config_key, environment, request_body, sealed_with FROM pf_change_requests
    WHERE sealed_with IS NOT NULL AND (:after_id IS NULL OR id > :after_id)
    ORDER BY id
    {row_limit}""",
    REQUEST_VALUES,
)
SEALED_HISTORY = Sql(
    "verify_sealed_history",
    """SELECT id, revision, config_key, environment, old_value, new_value, value_diff,
    rows_after, sealed_with FROM pf_config_history
    WHERE sealed_with IS NOT NULL AND (:after_id IS NULL OR id > :after_id)
    ORDER BY id
    {row_limit}""",
    HISTORY_VALUES,
)
# A key marked is_encrypted has its row sealed with its data key, values or not.
ENCRYPTED_IN_CLEAR = Sql(
    "verify_encrypted_in_clear",
    """SELECT id, config_key FROM pf_system_config
    WHERE is_encrypted = 1 AND sealed_with IS NULL
    ORDER BY config_key""",
)
_SEALED_TABLES: tuple[tuple[str, Sql, SealedColumns], ...] = (
    ("pf_system_config", SEALED_CONFIGS, CONFIG_VALUES),
    ("pf_environment_config", SEALED_OVERRIDES, OVERRIDE_VALUES),
    ("pf_change_requests", SEALED_REQUESTS, REQUEST_VALUES),
    ("pf_config_history", SEALED_HISTORY, HISTORY_VALUES),
)

# The triggers of migrations 0006 and 0007 that refuse changes to the history.
HISTORY_GUARDS = (
    "trg_history_no_update",
    "trg_history_no_delete",
    "trg_retention_no_update",
    "trg_retention_no_delete",
)
SQLITE_GUARDS = (*HISTORY_GUARDS, "trg_history_no_replace")
"""SQLite fires no delete trigger for INSERT OR REPLACE: a trigger of its own refuses it."""
# SQLite only: its catalogue. (Rendered for Oracle too by the grammar test, as is every
# statement; it is never sent there.)
SQLITE_TRIGGERS = Sql(
    "verify_sqlite_triggers",
    """SELECT name AS trigger_name, 'ENABLED' AS status FROM sqlite_master
    WHERE type = 'trigger' AND name IN ({names})""",
)
# Oracle only: a trigger may be there and disabled (a migration cut off half way). The
# catalogue shows the triggers of the schema's owner to the owner (who runs migrations,
# and so verify), or to a user who may create any trigger.
ORACLE_TRIGGERS = Sql(
    "verify_oracle_triggers",
    """SELECT LOWER(trigger_name) AS trigger_name, status FROM all_triggers
    WHERE LOWER(table_name) IN ('pf_config_history', 'pf_history_retention')
    AND LOWER(trigger_name) IN ({names})""",
)


class SqlIntegrityRepository:
    """Reads for `switchyard verify`, over one consistent snapshot."""

    def __init__(self, session: Session, sealing: SealingSession) -> None:
        self._session = session
        self._sealing = sealing

    async def spine(self) -> Spine:
        """The facts of the revision spine (`domain.integrity.Spine`)."""
        bounds = await self._session.fetch_one(SPINE_BOUNDS)
        kept = await self._session.fetch_one(KEPT_FROM)
        current = await self._session.fetch_one(CURRENT_REVISION)
        gaps = await self._session.fetch_all(SPINE_GAPS, {"row_limit": REPORTED})
        uneven = await self._session.fetch_all(UNEVEN_REVISIONS, {"row_limit": REPORTED})
        assert bounds is not None and kept is not None
        return Spine(
            current=int(current["revision"]) if current else 0,
            oldest=int(bounds["oldest"]),
            newest=int(bounds["newest"]),
            kept_from=int(kept["kept_from"]),
            revisions=int(bounds["revision_count"]),
            rows=int(bounds["row_count"]),
            gaps=tuple((int(r["prev_revision"]), int(r["revision"])) for r in gaps),
            uneven=tuple(
                (
                    int(r["revision"]),
                    int(r["row_count"]),
                    int(r["first_index"]),
                    int(r["last_index"]),
                )
                for r in uneven
            ),
        )

    async def sealed_rows(self) -> tuple[int, list[Violation]]:
        """Opens every sealed column of every table with the configured keys: how many
        rows were sealed, and a violation for each that does not open. Also a violation
        for each key marked is_encrypted whose row is not sealed."""
        checked = 0
        found: list[Violation] = []
        for table, sql, columns in _SEALED_TABLES:
            after: str | None = None
            while True:
                rows = await self._session.fetch_all(sql, {"after_id": after, "row_limit": _PAGE})
                for row in rows:
                    checked += 1
                    problem = await self._open(columns, row)
                    if problem is not None:
                        found.append(_sealed_violation(table, row, problem))
                if len(rows) < _PAGE:
                    break
                after = str(rows[-1]["id"])
        for row in await self._session.fetch_all(ENCRYPTED_IN_CLEAR):
            found.append(
                Violation(
                    SEALED,
                    "pf_system_config",
                    f"config key {row['config_key']!r} is marked is_encrypted, but its "
                    "row is not sealed",
                    row=str(row["id"]),
                )
            )
        return checked, found

    async def _open(self, columns: SealedColumns, row: Row) -> str | None:
        try:
            await self._sealing.open_row(columns, row)
        except FailedPrecondition as error:
            return error.message
        return None

    async def guards(self) -> list[Violation]:
        """A violation for each trigger guarding the history that is missing or
        disabled."""
        oracle = self._session.dialect.name == "oracle"
        names = HISTORY_GUARDS if oracle else SQLITE_GUARDS
        rows = await self._session.fetch_all(
            ORACLE_TRIGGERS if oracle else SQLITE_TRIGGERS, lists={"names": names}
        )
        status = {str(r["trigger_name"]).lower(): str(r["status"]).upper() for r in rows}
        found = []
        for name in names:
            table = "pf_history_retention" if "retention" in name else "pf_config_history"
            if name not in status:
                found.append(
                    Violation(
                        GUARDS,
                        table,
                        f"trigger {name} is missing (or this database user cannot see it: "
                        "verify as the schema's owner, who runs migrations)",
                    )
                )
            elif status[name] != "ENABLED":
                found.append(
                    Violation(
                        GUARDS,
                        table,
                        f"trigger {name} is {status[name].lower()}: a migration was cut off; "
                        "run `switchyard migrate` again",
                    )
                )
        return found


def _sealed_violation(table: str, row: Row, problem: str) -> Violation:
    revision = row.get("revision")
    return Violation(
        SEALED,
        table,
        problem,
        row=str(row["id"]),
        revision=None if revision is None else int(revision),
    )


__all__ = ["HISTORY_GUARDS", "REPORTED", "SQLITE_GUARDS", "SqlIntegrityRepository"]

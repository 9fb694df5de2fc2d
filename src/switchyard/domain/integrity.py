"""A database's invariants, as pure checks: what `switchyard verify` reports.

- The revision spine: every revision from the oldest the history keeps to the current
  one (`pf_revision`) has its history rows, numbered 0.. without a hole, and the current
  revision is the newest one recorded.
- The history chain: what the history says each row was left as, by the last change
  that wrote it, is what the tables hold. History rows record whole rows (`rows_after`,
  or for definitions, tokens, users and change requests the whole document as
  `new_value`), so folding them in order rebuilds every table (the replay test,
  tests/service/test_history_replay.py, rebuilds one from them and compares).
- Sealed columns open, and the history's guards are in place (found by the store; they
  arrive here as violations).

Nothing here reads a database: the store and the service hand the facts in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from switchyard.domain.models import ChangeKind, HistoryEntry, JSONValue

SPINE = "spine"
CHAIN = "chain"
SEALED = "sealed"
GUARDS = "guards"

# Counters of use, written by the services in batches and recorded by no history row.
TELEMETRY = frozenset(
    {"evaluation_count", "last_evaluated", "trigger_count", "last_triggered", "usage_count"}
)
# The field of each recorded row that names it; a removed row (no document) is named by
# its history row: by its key, or for an override by its record id.
IDENTITY = {
    "pf_system_config": "key",
    "pf_environment_config": "id",
    "pf_environments": "name",
    "pf_config_templates": "name",
    "pf_maintenance_windows": "name",
    "pf_feature_flags": "key",
    "pf_rate_limits": "key",
    "pf_api_tokens": "id",
    "pf_users": "id",
    "pf_change_requests": "id",
}
# Rows the migrations make, which no history row records.
SEEDED = frozenset(
    {
        *(
            ("pf_environments", name)
            for name in ("development", "test", "staging", "production", "demo", "local")
        ),
        ("pf_users", "00000000-0000-0000-0000-000000000001"),
        ("pf_users", "00000000-0000-0000-0000-000000000002"),
    }
)
# Kinds whose history rows record the rows they wrote in `rows_after`, and which tables.
_ROWS_AFTER_KINDS = {
    ChangeKind.CONFIG: ("pf_system_config", "pf_environment_config"),
    ChangeKind.ENVIRONMENT: ("pf_environments",),
    ChangeKind.TEMPLATE: ("pf_config_templates",),
    ChangeKind.MAINTENANCE_WINDOW: ("pf_maintenance_windows",),
}

RowId = tuple[str, str]
"""(table, identity)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One invariant that does not hold, and where."""

    check: str
    table: str
    message: str
    row: str | None = None
    revision: int | None = None

    def line(self) -> str:
        where = self.table
        if self.row is not None:
            where += f" row {self.row}"
        if self.revision is not None:
            where += f" revision {self.revision}"
        return f"{self.check}: {where}: {self.message}"

    def document(self) -> dict[str, JSONValue]:
        return {
            "check": self.check,
            "table": self.table,
            "row": self.row,
            "revision": self.revision,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Spine:
    """The facts of the revision spine, as the store reads them."""

    current: int
    """pf_revision's revision."""
    oldest: int
    """The oldest revision the history holds; 0 when it holds none."""
    newest: int
    """The newest revision the history holds; 0 when it holds none."""
    kept_from: int
    """The newest retention's keep_from_revision (0 when none was recorded): rows below
    it may have been deleted."""
    revisions: int
    """How many distinct revisions the history holds."""
    rows: int
    """How many history rows."""
    gaps: tuple[tuple[int, int], ...] = ()
    """(a, b): revisions a and b are held and none between them."""
    uneven: tuple[tuple[int, int, int, int], ...] = ()
    """(revision, rows, first change_index, last change_index) of each revision whose
    rows are not numbered 0 to rows - 1."""


def spine_violations(spine: Spine) -> list[Violation]:
    found = []
    table = "pf_config_history"
    if spine.newest != spine.current:
        found.append(
            Violation(
                SPINE,
                "pf_revision",
                f"the current revision is {spine.current}, the newest the history holds "
                f"is {spine.newest or 'none'}",
                revision=spine.current,
            )
        )
    first_kept = max(spine.kept_from, 1)
    if spine.current and spine.oldest > first_kept and first_kept <= spine.current:
        missing_to = min(spine.oldest, spine.current + 1) - 1
        what = (
            f"revision {first_kept} has"
            if missing_to == first_kept
            else f"revisions {first_kept} to {missing_to} have"
        )
        found.append(
            Violation(
                SPINE,
                table,
                f"{what} no history rows, and no retention allows their removal",
                revision=first_kept,
            )
        )
    for before, after in spine.gaps:
        what = (
            f"revision {before + 1} has"
            if after == before + 2
            else f"revisions {before + 1} to {after - 1} have"
        )
        found.append(Violation(SPINE, table, f"{what} no history rows", revision=before + 1))
    for revision, rows, first, last in spine.uneven:
        found.append(
            Violation(
                SPINE,
                table,
                f"its {rows} rows are numbered {first} to {last}, not 0 to {rows - 1}",
                revision=revision,
            )
        )
    return found


@dataclass(slots=True)
class _Recorded:
    document: dict[str, JSONValue] | None
    revision: int


@dataclass(slots=True)
class HistoryFold:
    """The rows the history says the tables hold: for each, the document of the last
    change that wrote it (None when that change removed it). Entries are added oldest
    first."""

    rows: dict[RowId, _Recorded] = field(default_factory=dict)
    unrecorded_tables: set[str] = field(default_factory=set)
    """Tables some history row changed without recording the rows it wrote (rows made
    before `rows_after` was recorded): a row of theirs that no history row names is
    no violation."""
    entries: int = 0

    def add(self, entry: HistoryEntry) -> None:
        self.entries += 1
        recorded = recorded_rows(entry)
        if recorded is None:
            self.unrecorded_tables.update(_ROWS_AFTER_KINDS.get(entry.kind, ()))
            return
        for table, identity, document in recorded:
            before = self.rows.get((table, identity))
            merged = document
            if document is not None and before is not None and before.document is not None:
                # An environment's row names created_at only when it is made.
                merged = {**before.document, **document}
            self.rows[(table, identity)] = _Recorded(merged, entry.revision)


def recorded_rows(
    entry: HistoryEntry,
) -> list[tuple[str, str, dict[str, JSONValue] | None]] | None:
    """The rows a history row says its change left, as (table, identity, document or
    None for a row removed); None when it does not say (no `rows_after`)."""
    if entry.kind in _ROWS_AFTER_KINDS:
        if entry.rows_after is None:
            return None
        found = []
        for table, row in entry.rows_after.items():
            document = row if isinstance(row, dict) else None
            found.append((table, _identity(table, document, entry), document))
        return found
    document = entry.new_value if isinstance(entry.new_value, dict) else None
    return [(entry.table_name, _identity(entry.table_name, document, entry), document)]


def _identity(table: str, document: dict[str, JSONValue] | None, entry: HistoryEntry) -> str:
    named = document.get(IDENTITY.get(table, "id")) if document is not None else None
    if named is not None:
        return str(named)
    return entry.record_id if table == "pf_environment_config" else entry.key


def chain_violations(
    fold: HistoryFold,
    current: Mapping[RowId, dict[str, JSONValue]],
    *,
    complete: bool,
    unreadable_keys: Iterable[str] = (),
) -> list[Violation]:
    """Where the tables (`current`, each row as a document of the fields its history
    rows record) differ from what the history says. `complete`: the history holds every
    change since the database was made (nothing pruned), so a row no history row
    names must be one the migrations made. Rows of the config keys in
    `unreadable_keys` (whose history rows could not be read) are not compared."""
    skipped = set(unreadable_keys)
    found = []
    for row_id, recorded in sorted(fold.rows.items()):
        table, identity = row_id
        if _of_skipped_key(row_id, recorded.document, current.get(row_id), skipped):
            continue
        now = current.get(row_id)
        if recorded.document is None:
            if now is not None:
                found.append(
                    Violation(
                        CHAIN,
                        table,
                        "the history says this row was removed, but the table holds it",
                        row=identity,
                        revision=recorded.revision,
                    )
                )
            continue
        if now is None:
            found.append(
                Violation(
                    CHAIN,
                    table,
                    "the history says this row exists, but the table does not hold it",
                    row=identity,
                    revision=recorded.revision,
                )
            )
            continue
        differing = sorted(
            name
            for name in recorded.document.keys() & now.keys()
            if name not in TELEMETRY and recorded.document[name] != now[name]
        )
        if differing:
            found.append(
                Violation(
                    CHAIN,
                    table,
                    f"{', '.join(differing)} differ from what the history recorded last "
                    f"(table {_shown(now, differing)}; history "
                    f"{_shown(recorded.document, differing)})",
                    row=identity,
                    revision=recorded.revision,
                )
            )
    for row_id in sorted(current.keys() - fold.rows.keys()):
        table, identity = row_id
        if row_id in SEEDED or not complete or table in fold.unrecorded_tables:
            continue
        if _of_skipped_key(row_id, None, current[row_id], skipped):
            continue
        found.append(Violation(CHAIN, table, "no history row records this row", row=identity))
    return found


def _of_skipped_key(
    row_id: RowId,
    recorded: dict[str, JSONValue] | None,
    now: dict[str, JSONValue] | None,
    skipped: set[str],
) -> bool:
    if not skipped or row_id[0] not in ("pf_system_config", "pf_environment_config"):
        return False
    keys = {row_id[1]} if row_id[0] == "pf_system_config" else set()
    for document in (recorded, now):
        if document is not None and isinstance(document.get("key"), str):
            keys.add(str(document["key"]))
    return bool(keys & skipped)


def _shown(document: Mapping[str, JSONValue], names: list[str]) -> str:
    text = ", ".join(f"{name}={document[name]!r}" for name in names)
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass(frozen=True, slots=True)
class Report:
    """What `switchyard verify` found."""

    violations: tuple[Violation, ...]
    checked: dict[str, int]
    """How much each check looked at: revisions, history rows, sealed rows, table rows."""
    notes: tuple[str, ...] = ()
    """What could not be checked, and why (a pruned history, say)."""

    @property
    def holds(self) -> bool:
        return not self.violations

    def document(self) -> dict[str, JSONValue]:
        return {
            "ok": self.holds,
            "checked": dict(self.checked),
            "violations": [v.document() for v in self.violations],
            "notes": list(self.notes),
        }


__all__ = [
    "CHAIN",
    "GUARDS",
    "IDENTITY",
    "SEALED",
    "SEEDED",
    "SPINE",
    "TELEMETRY",
    "HistoryFold",
    "Report",
    "RowId",
    "Spine",
    "Violation",
    "chain_violations",
    "recorded_rows",
    "spine_violations",
]

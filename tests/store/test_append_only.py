"""The history is append-only, and nothing can make it otherwise by accident.

- No statement the repository layer can send, and no string anywhere in `src/` that
  reads as SQL, updates, deletes, merges into, truncates or replaces a history row.
  Statements are parsed (sqlglot), so a write hidden in a formatted string is found;
  a pattern over the raw text is a second net for what does not parse.
- Migrations create the history table once (0001). A later one may rebuild it only by
  SQLite's copy pattern (every row copied into a new table, the old one dropped, the new
  one renamed to it) and may never drop a column of it. It may fill a column it adds
  itself, only where that column is NULL (no value a row held changes), and a guard it
  lifts for that (a trigger dropped or disabled) must be back before it ends.
- The database refuses it too: triggers refuse an UPDATE, a DELETE (but below a
  retention recorded first in `pf_history_retention`, itself append-only) and, on
  SQLite, an INSERT OR REPLACE that would overwrite a row. Checked on a real SQLite file,
  and the Oracle migration declares the same guards.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import logging
import pkgutil
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

import switchyard
import switchyard.store
from switchyard.store import migrate, open_store
from switchyard.store.migrations import Migration, migrations
from switchyard.store.sql import REGISTRY

from .test_oracle_sql import MIGRATION_STATEMENTS, RENDERINGS

logging.getLogger("sqlglot").setLevel(logging.ERROR)

HISTORY = "pf_config_history"
PROTECTED = frozenset({HISTORY, "pf_history_retention"})
"""Tables no statement may change but by appending (the history, and the record of the
retentions that pruned it)."""

SRC = Path(switchyard.__file__).parent
# A second net over raw text: a write statement naming a protected table.
_WRITE = re.compile(
    r"\b(?:UPDATE|DELETE(?:\s+FROM)?|MERGE\s+INTO|TRUNCATE(?:\s+TABLE)?|REPLACE\s+INTO)"
    r"\s+[\"`]?(?:\w+\.)?[\"`]?(pf_config_history|pf_history_retention)\b",
    re.IGNORECASE,
)
_MARKER = re.compile(r"\{(\w+)\}")
_TRIGGER = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\b", re.IGNORECASE)


def _table(node: object) -> str | None:
    if not isinstance(node, exp.Expression):
        return None
    table = node if isinstance(node, exp.Table) else node.find(exp.Table)
    return table.name.lower() if table is not None else None


def _writes(tree: exp.Expr) -> Iterator[str]:
    """What in a parsed statement changes or removes rows of a protected table."""
    for node in tree.walk():
        if isinstance(node, exp.Update | exp.Delete | exp.Merge):
            if _table(node.this) in PROTECTED:
                yield f"{node.key.upper()} of {_table(node.this)}"
        elif isinstance(node, exp.TruncateTable):
            for table in node.expressions:
                if _table(table) in PROTECTED:
                    yield f"TRUNCATE of {_table(table)}"
        elif isinstance(node, exp.Insert) and _table(node.this) in PROTECTED:
            if node.args.get("alternative") or node.args.get("conflict"):
                yield f"INSERT that overwrites rows of {_table(node.this)}"
        elif isinstance(node, exp.Alter) and _table(node.this) in PROTECTED:
            for action in node.args.get("actions") or []:
                if isinstance(action, exp.Drop) and str(action.args.get("kind")) == "COLUMN":
                    yield f"a column of {_table(node.this)} dropped"


def problems(sql: str, dialect: str) -> list[str]:
    """Why `sql` would change the history other than by appending; empty when it would
    not. Parsed where it parses (both nets apply then), matched by pattern always."""
    found = [f"{match.group(0)!r}" for match in _WRITE.finditer(sql)]
    if not _TRIGGER.match(sql):  # a trigger body is PL/SQL or SQLite's own: pattern only
        text = _MARKER.sub(lambda m: "" if m.group(1) == "row_limit" else ":x", sql)
        with contextlib.suppress(sqlglot.errors.SqlglotError):
            for tree in sqlglot.parse(text, read=dialect):
                if tree is not None:
                    found += _writes(tree)
    return found


# --- the statements the service can send ---------------------------------------------


def test_the_collector_sees_every_statement_of_every_store_module() -> None:
    for module in pkgutil.walk_packages(switchyard.store.__path__, "switchyard.store."):
        importlib.import_module(module.name)
    rendered = {label.split("[")[0] for label in RENDERINGS}
    assert {sql.name for sql in REGISTRY} <= rendered, (
        "test_oracle_sql does not import every module that defines statements"
    )


@pytest.mark.parametrize("label", sorted(RENDERINGS))
def test_no_repository_statement_changes_the_history(label: str) -> None:
    assert problems(RENDERINGS[label], "oracle") == [], f"{label}:\n{RENDERINGS[label]}"


def _literals(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every string a module spells out: constants, f-strings (their holes as `x`, the
    names of module constants as their values) and concatenations of them."""
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def text(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            parts = []
            for part in node.values:
                if isinstance(part, ast.FormattedValue):
                    name = part.value.id if isinstance(part.value, ast.Name) else None
                    parts.append(constants.get(name or "", "x"))
                else:
                    parts.append(text(part) or "")
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            left, right = text(node.left), text(node.right)
            if left is not None and right is not None:
                return left + right
        return None

    for node in ast.walk(tree):
        spelled = text(node)
        if spelled is not None:
            yield getattr(node, "lineno", 0), spelled


def _source_strings() -> Iterator[tuple[str, str]]:
    for path in sorted(SRC.rglob("*.py")):
        for line, literal in _literals(ast.parse(path.read_text(encoding="utf-8"))):
            if any(table in literal.lower() for table in PROTECTED):
                yield f"{path.relative_to(SRC.parent)}:{line}", literal


SOURCE_STRINGS = dict(_source_strings())


def test_the_scan_reads_the_repository_strings() -> None:
    """The history repository's INSERT is found: the scan does read the sources."""
    assert any("INSERT INTO pf_config_history" in s for s in SOURCE_STRINGS.values())


@pytest.mark.parametrize("where", sorted(SOURCE_STRINGS))
def test_no_string_in_the_sources_changes_the_history(where: str) -> None:
    literal = SOURCE_STRINGS[where]
    found = problems(literal, "oracle") + problems(literal, "sqlite")
    assert found == [], f"{where}:\n{literal}"


def test_no_other_file_in_the_sources_changes_the_history() -> None:
    """Files that are not Python or migrations (none today) get the pattern."""
    others = [
        path
        for path in SRC.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc", ".sql", ".so"}
    ]
    found = [
        f"{path}: {match.group(0)}"
        for path in others
        for match in _WRITE.finditer(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == []


# --- the migrations ---------------------------------------------------------------------


_ADDED = re.compile(
    r"^\s*ALTER\s+TABLE\s+pf_config_history\s+ADD\s+(?:COLUMN\s+)?\(?\s*(\w+)", re.IGNORECASE
)
_LIFTED = re.compile(r"^\s*(?:DROP\s+TRIGGER|ALTER\s+TRIGGER)\s+(\w+)(\s+DISABLE)?\s*$", re.I)
_RESTORED = re.compile(
    r"^\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+(\w+)|ALTER\s+TRIGGER\s+(\w+)\s+ENABLE)",
    re.IGNORECASE,
)


def _conjuncts(node: exp.Expr) -> Iterator[exp.Expr]:
    if isinstance(node, exp.And):
        yield from _conjuncts(node.this)
        yield from _conjuncts(node.expression)
    elif isinstance(node, exp.Paren):
        yield from _conjuncts(node.this)
    else:
        yield node


def _fills_added_columns(tree: exp.Expr | None, added: set[str]) -> bool:
    """An UPDATE of the history that sets only columns the migration added itself, and
    only in rows where each is NULL: no value a row held changes."""
    if not isinstance(tree, exp.Update) or _table(tree.this) != HISTORY:
        return False
    assigned = {eq.this.name.lower() for eq in tree.expressions if isinstance(eq, exp.EQ)}
    if not assigned or len(assigned) != len(tree.expressions) or not assigned <= added:
        return False
    where = tree.args.get("where")
    null_only = {
        c.this.name.lower()
        for c in (_conjuncts(where.this) if where is not None else ())
        if isinstance(c, exp.Is)
        and isinstance(c.this, exp.Column)
        and isinstance(c.expression, exp.Null)
    }
    return assigned <= null_only


def _migration_problems(migration: Migration, dialect: str) -> list[str]:
    found = []
    statements = [(s, _parse(s, dialect)) for s in migration.statements]
    added: set[str] = set()
    lifted: set[str] = set()
    for index, (sql, tree) in enumerate(statements):
        head = " ".join(sql.split()[:6])
        if (match := _ADDED.match(sql)) is not None:
            added.add(match.group(1).lower())
        lift = _LIFTED.match(sql)
        if lift is not None and (sql.split()[0].upper() == "DROP" or lift.group(2)):
            lifted.add(lift.group(1).lower())
        if (match := _RESTORED.match(sql)) is not None:
            lifted.discard((match.group(1) or match.group(2)).lower())
        if _fills_added_columns(tree, added):
            continue
        found += [f"{head}...: {p}" for p in problems(sql, dialect)]
        creates_history = (
            isinstance(tree, exp.Create) and tree.kind == "TABLE" and _table(tree.this) == HISTORY
        )
        if creates_history and migration.version != 1:
            found.append(f"{head}...: only migration 1 creates {HISTORY}")
        if isinstance(tree, exp.Drop) and str(tree.args.get("kind")).upper() == "TABLE":
            dropped = _table(tree)
            if dropped in PROTECTED and not _copied_before_and_renamed_after(
                statements, index, dropped
            ):
                found.append(
                    f"{head}...: {dropped} dropped without every row copied into a table "
                    "that is then renamed to it"
                )
    found += [f"trigger {name} lifted and not restored by the migration's end" for name in lifted]
    return found


def _parse(sql: str, dialect: str) -> exp.Expr | None:
    if _TRIGGER.match(sql):
        return None
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None


def _copied_before_and_renamed_after(
    statements: list[tuple[str, exp.Expr | None]], index: int, table: str
) -> bool:
    """SQLite's way to change a table: INSERT INTO copy SELECT * FROM table (every row,
    every column), DROP TABLE table, ALTER TABLE copy RENAME TO table."""
    copies = set()
    for _, tree in statements[:index]:
        if not isinstance(tree, exp.Insert) or not isinstance(tree.expression, exp.Select):
            continue
        select = tree.expression
        whole = (
            _table(select.args.get("from_") or select.args.get("from")) == table
            and [type(e) for e in select.expressions] == [exp.Star]
            and not any(select.args.get(k) for k in ("where", "limit", "group", "distinct"))
            and not select.args.get("joins")
        )
        if whole:
            copies.add(_table(tree.this))
    for _, tree in statements[index + 1 :]:
        if isinstance(tree, exp.Alter) and _table(tree.this) in copies:
            for action in tree.args.get("actions") or []:
                if isinstance(action, exp.AlterRename) and _table(action.this) == table:
                    return True
    return False


@pytest.mark.parametrize("dialect", ["sqlite", "oracle"])
def test_no_migration_changes_or_loses_history_rows(dialect: str) -> None:
    found = [
        f"{migration.version:04d}_{migration.name}: {problem}"
        for migration in migrations(dialect)
        for problem in _migration_problems(migration, dialect)
    ]
    assert found == []


def test_the_oracle_collector_holds_the_migrations() -> None:
    assert any(HISTORY in s for s in MIGRATION_STATEMENTS)


# --- the checks find what they are there to find ---------------------------------------


@pytest.mark.parametrize(
    ("sql", "dialect"),
    [
        ("DELETE FROM pf_config_history WHERE revision < :revision", "oracle"),
        ("delete pf_config_history where revision < 5", "oracle"),
        ('UPDATE "PF_CONFIG_HISTORY" SET change_reason = NULL', "oracle"),
        ("UPDATE pf_config_history h SET h.change_reason = NULL", "oracle"),
        (
            "MERGE INTO pf_config_history t USING (SELECT 1 AS id FROM dual) s "
            "ON (t.id = s.id) WHEN MATCHED THEN UPDATE SET t.change_reason = NULL",
            "oracle",
        ),
        ("TRUNCATE TABLE pf_config_history", "oracle"),
        ("INSERT OR REPLACE INTO pf_config_history (id) VALUES (:id)", "sqlite"),
        ("REPLACE INTO pf_config_history (id) VALUES (:id)", "sqlite"),
        (
            "INSERT INTO pf_config_history (id) VALUES (:id) "
            "ON CONFLICT (id) DO UPDATE SET change_reason = NULL",
            "sqlite",
        ),
        ("WITH old AS (SELECT 1 AS r) DELETE FROM pf_config_history", "sqlite"),
        ("DELETE FROM pf_history_retention", "sqlite"),
        ("ALTER TABLE pf_config_history DROP COLUMN change_reason", "sqlite"),
        # Split across lines and cased oddly, as a formatted string may leave it.
        ("Delete\n  From\n    pf_config_history", "oracle"),
    ],
)
def test_the_check_finds_every_way_to_change_the_history(sql: str, dialect: str) -> None:
    assert problems(sql, dialect)


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO pf_config_history (id, revision) VALUES (:id, :revision)",
        "SELECT * FROM pf_config_history WHERE revision > :after_revision",
        "DELETE FROM pf_environment_config WHERE config_key = :config_key",
        "UPDATE pf_system_config SET version = :version WHERE config_key = :config_key",
    ],
)
def test_the_check_lets_reads_appends_and_other_tables_be(sql: str) -> None:
    assert problems(sql, "oracle") == []


def test_the_scan_finds_a_write_hidden_in_a_formatted_string() -> None:
    source = """
TABLE = "pf_config_history"
PRUNE = f"DELETE FROM {TABLE} WHERE revision < {limit}"
OTHER = "UPDATE pf_config" + "_history SET change_reason = NULL"
"""
    literals = [s for _, s in _literals(ast.parse(source))]
    assert any(problems(s, "oracle") for s in literals if s.startswith("DELETE"))
    assert any(problems(s, "oracle") for s in literals if s.startswith("UPDATE"))


def _migration(version: int, *statements: str) -> Migration:
    return Migration(version=version, name="test", statements=statements)


def test_the_copy_pattern_is_allowed_but_a_drop_or_a_filtered_copy_is_not() -> None:
    copy = [
        "CREATE TABLE pf_config_history_next (id TEXT NOT NULL PRIMARY KEY)",
        "INSERT INTO pf_config_history_next SELECT * FROM pf_config_history",
        "DROP TABLE pf_config_history",
        "ALTER TABLE pf_config_history_next RENAME TO pf_config_history",
    ]
    filtered = [copy[0], copy[1] + " WHERE revision > 10", *copy[2:]]
    not_renamed = copy[:3]
    assert _migration_problems(_migration(7, *copy), "sqlite") == []
    assert _migration_problems(_migration(7, *filtered), "sqlite")
    assert _migration_problems(_migration(7, *not_renamed), "sqlite")
    assert _migration_problems(_migration(7, "DROP TABLE pf_config_history"), "sqlite")
    assert _migration_problems(_migration(7, "CREATE TABLE pf_config_history (id TEXT)"), "sqlite")


@pytest.mark.parametrize("dialect", ["sqlite", "oracle"])
def test_a_migration_may_fill_only_a_column_it_adds_and_only_where_it_is_null(
    dialect: str,
) -> None:
    add = "ALTER TABLE pf_config_history ADD (marker VARCHAR2(36 CHAR))"
    if dialect == "sqlite":
        add = "ALTER TABLE pf_config_history ADD COLUMN marker TEXT"
    lift = (
        ("DROP TRIGGER trg_history_no_update",)
        if dialect == "sqlite"
        else ("ALTER TRIGGER trg_history_no_update DISABLE",)
    )
    restore = (
        "CREATE TRIGGER trg_history_no_update BEFORE UPDATE ON pf_config_history\n"
        "BEGIN\n    SELECT RAISE(ABORT, 'no');\nEND;"
        if dialect == "sqlite"
        else "ALTER TRIGGER trg_history_no_update ENABLE"
    )
    fill = "UPDATE pf_config_history SET marker = 'x' WHERE marker IS NULL AND revision > 3"
    assert _migration_problems(_migration(7, add, *lift, fill, restore), dialect) == []
    refused = [
        # a column the migration did not add
        "UPDATE pf_config_history SET change_reason = 'x' WHERE change_reason IS NULL",
        # where it is set already
        "UPDATE pf_config_history SET marker = 'x' WHERE marker IS NOT NULL",
        "UPDATE pf_config_history SET marker = 'x' WHERE marker IS NULL OR revision > 3",
        "UPDATE pf_config_history SET marker = 'x'",
        # the added column and another
        "UPDATE pf_config_history SET marker = 'x', action = 'create' WHERE marker IS NULL",
    ]
    for update in refused:
        assert _migration_problems(_migration(7, add, *lift, update, restore), dialect), update
    assert _migration_problems(_migration(7, add, *lift, fill), dialect), "guard left lifted"
    assert _migration_problems(_migration(7, *lift, fill, restore), dialect), "column not added"


# --- the database refuses -----------------------------------------------------------------

OPERATOR = "00000000-0000-0000-0000-000000000001"


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    """A migrated SQLite file holding history rows of revisions 1, 2 and 3."""
    path = tmp_path / "append_only.db"
    store = await open_store(f"sqlite:///{path}")
    await migrate(store)
    await store.close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        for revision in (1, 2, 3):
            db.execute(
                "INSERT INTO pf_config_history (id, revision, change_index, change_kind, "
                "table_name, record_id, config_key, action, changed_by) "
                "VALUES (?, ?, 0, 'config', 'pf_system_config', 'r', 'k', 'update', ?)",
                (f"row-{revision}", revision, OPERATOR),
            )
    return path


def _refused(path: Path, sql: str, *binds: object) -> str:
    with (
        contextlib.closing(sqlite3.connect(path)) as db,
        pytest.raises(sqlite3.Error) as error,
        db,
    ):
        db.execute(sql, binds)
    return str(error.value)


def _revisions(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return [r for (r,) in db.execute(f"SELECT revision FROM {HISTORY} ORDER BY revision")]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE pf_config_history SET change_reason = 'rewritten'",
        "UPDATE pf_config_history SET revision = revision + 100 WHERE revision = 3",
        "DELETE FROM pf_config_history",
        "DELETE FROM pf_config_history WHERE revision = 1",
        "INSERT OR REPLACE INTO pf_config_history (id, revision, change_index, change_kind, "
        "table_name, record_id, config_key, action, changed_by) VALUES ('row-1', 1, 0, "
        "'config', 'pf_system_config', 'r', 'k', 'delete', '" + OPERATOR + "')",
        "INSERT OR REPLACE INTO pf_config_history (id, revision, change_index, change_kind, "
        "table_name, record_id, config_key, action, changed_by) VALUES ('other', 2, 0, "
        "'config', 'pf_system_config', 'r', 'k', 'delete', '" + OPERATOR + "')",
    ],
)
async def test_a_sqlite_database_refuses_to_change_a_history_row(database: Path, sql: str) -> None:
    assert "append-only" in _refused(database, sql)
    assert _revisions(database) == [1, 2, 3]
    with contextlib.closing(sqlite3.connect(database)) as db:
        reasons = {r for (r,) in db.execute(f"SELECT action FROM {HISTORY}")}
    assert reasons == {"update"}


async def test_retention_is_recorded_first_and_prunes_only_below_it(database: Path) -> None:
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "INSERT INTO pf_history_retention (keep_from_revision, performed_by, reason) "
            "VALUES (3, 'ops@example.com', 'keep a year of history (OPS-12)')"
        )
        db.execute(f"DELETE FROM {HISTORY} WHERE revision < 3")

    assert _revisions(database) == [3]
    assert "append-only" in _refused(database, f"DELETE FROM {HISTORY}")
    assert "append-only" in _refused(database, f"UPDATE {HISTORY} SET change_reason = NULL")
    for sql in (
        "DELETE FROM pf_history_retention",
        "UPDATE pf_history_retention SET keep_from_revision = 100",
    ):
        assert "append-only" in _refused(database, sql)
    with contextlib.closing(sqlite3.connect(database)) as db:
        ledger = db.execute(
            "SELECT keep_from_revision, performed_by, reason, performed_at "
            "FROM pf_history_retention"
        ).fetchall()
    assert [row[:3] for row in ledger] == [
        (3, "ops@example.com", "keep a year of history (OPS-12)")
    ]
    assert ledger[0][3]


def _oracle_guards() -> set[tuple[str, str, str]]:
    guards = set()
    for migration in migrations("oracle"):
        for sql in migration.statements:
            head = re.match(
                r"\s*CREATE\s+OR\s+REPLACE\s+TRIGGER\s+(\w+)\s+BEFORE\s+(\w+)\s+ON\s+(\w+)",
                sql,
                re.IGNORECASE,
            )
            if head:
                guards.add((head[1].lower(), head[2].upper(), head[3].lower()))
    return guards


async def test_both_schemas_guard_the_history_and_the_retention_ledger(tmp_path: Path) -> None:
    store = await open_store(f"sqlite:///{tmp_path / 'guards.db'}")
    await migrate(store)
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "guards.db")) as db:
        rows = db.execute("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
        sqlite_guards = {
            (name, re.search(r"BEFORE\s+(\w+)", sql, re.IGNORECASE)[1].upper(), table)  # type: ignore[index]
            for name, table, sql in rows
        }
    expected = {
        (f"trg_{short}_no_{event.lower()}", event, table)
        for short, table in (("history", HISTORY), ("retention", "pf_history_retention"))
        for event in ("UPDATE", "DELETE")
    }
    # INSERT OR REPLACE is SQLite's alone: Oracle has no statement that overwrites a row
    # on insert (MERGE updates, which the update trigger refuses).
    sqlite_only = {("trg_history_no_replace", "INSERT", HISTORY)}
    assert _oracle_guards() == expected
    assert sqlite_guards == expected | sqlite_only

"""Every statement the Oracle dialect can send, and every statement of the Oracle
migrations, is Oracle 19c SQL: it parses under the Oracle grammars at hand and uses
nothing Oracle lacks. No Oracle server runs here, so a typo must not wait for the first
Oracle deploy to be found."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import Callable, Iterator

import pytest

import switchyard.store
from switchyard.store.dialect import ORACLE
from switchyard.store.migrations import bootstrap, migrations
from switchyard.store.sql import LIST_SIZES, REGISTRY

from .oracle_grammar import (
    construct_problems,
    duplicate_indexes,
    oracle_problems,
    sqlfluff_problems,
    sqlglot_problems,
)

# sqlglot warns when it falls back to an opaque command; the checker reports that itself.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

# A statement registers itself when its module is imported: import every store module.
for _module in pkgutil.walk_packages(switchyard.store.__path__, "switchyard.store."):
    importlib.import_module(_module.name)

MIGRATION_STATEMENTS = [
    *bootstrap("oracle"),
    *(statement for migration in migrations("oracle") for statement in migration.statements),
]


def _renderings() -> Iterator[tuple[str, str]]:
    for sql in REGISTRY:
        for sizes in sql.every_expansion():
            label = sql.name + "".join(f"[{k}={v}]" for k, v in sizes.items())
            yield label, ORACLE.render(sql, tuple(sizes.items()))


RENDERINGS = dict(_renderings())
# IN lists of every size differ only in how many binds they hold: the full grammar check
# runs on the smallest and the largest, sqlglot and the construct check on all of them.
_EDGE_SIZES = {LIST_SIZES[0], LIST_SIZES[-1]}


def _is_edge(label: str) -> bool:
    sizes = [int(part.split("=")[1].rstrip("]")) for part in label.split("[")[1:]]
    return all(size in _EDGE_SIZES for size in sizes)


def test_the_registry_holds_every_repository_statement() -> None:
    names = {sql.name for sql in REGISTRY}
    assert len(names) == len(REGISTRY), "two statements share a name"
    assert {
        "find_config",
        "list_configs",
        "insert_history",
        "list_history",
        "lock_revision",
        "bump_revision",
        "begin_read_only",
        "applied_migrations",
    } <= names


@pytest.mark.parametrize("label", sorted(RENDERINGS))
def test_every_statement_the_oracle_dialect_emits_is_oracle_sql(label: str) -> None:
    text = RENDERINGS[label]
    problems = (
        oracle_problems(text)
        if _is_edge(label)
        else [
            *sqlglot_problems(text),
            *construct_problems(text),
        ]
    )
    assert not problems, f"{label}:\n{text}\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "statement",
    MIGRATION_STATEMENTS,
    ids=[" ".join(s.split()[:3]) for s in MIGRATION_STATEMENTS],
)
def test_every_migration_statement_is_oracle_sql(statement: str) -> None:
    problems = oracle_problems(statement)
    assert not problems, f"{statement}\n" + "\n".join(problems)


def test_no_index_duplicates_a_key() -> None:
    assert duplicate_indexes(MIGRATION_STATEMENTS) == []


def test_row_limits_use_fetch_first_and_lists_stay_within_oracles_limit() -> None:
    limited = [sql for sql in REGISTRY if sql.limited]
    assert limited
    for sql in limited:
        sizes = next(iter(sql.every_expansion()))
        assert "FETCH FIRST :row_limit ROWS ONLY" in ORACLE.render(sql, tuple(sizes.items()))
    assert LIST_SIZES[-1] <= 1000  # ORA-01795: at most 1000 expressions in a list


# --- the checker finds what it is there to find ----------------------------------------


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT config_key FROM pf_system_config LIMIT 5", "LIMIT"),
        ("INSERT INTO t (a) VALUES (:a) ON CONFLICT (a) DO NOTHING", "ON CONFLICT"),
        (
            # The specification's own index, which Oracle refuses.
            "CREATE INDEX idx_env_config_expires ON pf_environment_config(expires_at) "
            "WHERE expires_at IS NOT NULL",
            "partial index",
        ),
        ("SELECT a FROM t WHERE b = ?", "placeholders"),
        ("CREATE TABLE t (a BOOLEAN)", "BOOLEAN"),
        ("CREATE TABLE t (a TEXT)", "TEXT"),
        ("CREATE TABLE IF NOT EXISTS t (a NUMBER)", "IF [NOT] EXISTS"),
        ("UPDATE t SET a = 1 WHERE b = TRUE", "TRUE/FALSE"),
        ("SELECT a FROM t WHERE b = :size", "reserved word"),
        ("CREATE TABLE t (level NUMBER)", "reserved word"),
        ("SELEC a FROM t", "cannot parse"),
        ("SELECT a FROM t WHERE", "cannot parse"),
        ("SELECT `a` FROM t", "backticks"),
    ],
)
def test_the_checker_refuses_what_oracle_refuses(statement: str, expected: str) -> None:
    problems = oracle_problems(statement)
    assert any(expected in p for p in problems), problems


def test_the_checker_finds_the_specifications_duplicate_index() -> None:
    spec = [
        "CREATE TABLE pf_system_config (id VARCHAR2(36) DEFAULT SYS_GUID() PRIMARY KEY, "
        "config_key VARCHAR2(100) UNIQUE NOT NULL)",
        "CREATE INDEX idx_config_key ON pf_system_config(config_key)",
    ]
    assert duplicate_indexes(spec) == [
        "idx_config_key duplicates a key of pf_system_config ('config_key',) (ORA-01408)"
    ]


@pytest.mark.parametrize(
    ("statement", "refused_by", "accepted_by"),
    [
        ("SET TRANSACTION READ ONLY", sqlfluff_problems, sqlglot_problems),
        (
            "ALTER SESSION SET NLS_SORT = BINARY NLS_COMP = BINARY",
            sqlglot_problems,
            sqlfluff_problems,
        ),
        (
            "CREATE OR REPLACE TRIGGER trg_t BEFORE DELETE ON t FOR EACH ROW\n"
            "BEGIN\n    IF :OLD.a > 0 THEN\n"
            "        RAISE_APPLICATION_ERROR(-20001, 'no');\n    END IF;\nEND;",
            sqlglot_problems,
            sqlfluff_problems,
        ),
        ("ALTER TRIGGER trg_t DISABLE", sqlglot_problems, sqlfluff_problems),
    ],
)
def test_each_parser_gap_is_real_and_covered_by_the_other_parser(
    statement: str, refused_by: Callable[..., list[str]], accepted_by: Callable[..., list[str]]
) -> None:
    """An exemption stays only while the parser still refuses the statement, and the
    other parser must accept it."""
    assert refused_by(statement, exempt=False)
    assert accepted_by(statement, exempt=False) == []

"""Oracle SQL checked without an Oracle server.

No parser available here is an Oracle grammar on its own: sqlglot's `oracle` dialect
catches typos but accepts `LIMIT` and partial indexes; sqlfluff's is stricter in places
but lacks `IS JSON` and `SET TRANSACTION`. So a statement must parse under both (except
for the gaps named below, where the other parser's acceptance stands alone), and must not
use what Oracle 19c lacks.
"""

from __future__ import annotations

import re
from functools import lru_cache

import sqlglot
from sqlfluff.core import FluffConfig, Linter
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.tokens import TokenType

MAX_IDENTIFIER = 30
"""Oracle allows 128 bytes from 12.2 on; 30 keeps the schema valid on every release and
is what our names fit in anyway."""

# V$RESERVED_WORDS with RESERVED = 'Y' (plus a few that fail as bind names): none may
# name a column, a table or a bind variable (ORA-01745 for binds).
_RESERVED_WORDS = """
    ACCESS ADD ALL ALTER AND ANY AS ASC AUDIT BETWEEN BY CHAR CHECK CLUSTER COLUMN COMMENT
    COMPRESS CONNECT CREATE CURRENT DATE DECIMAL DEFAULT DELETE DESC DISTINCT DROP ELSE
    EXCLUSIVE EXISTS FILE FLOAT FOR FROM GRANT GROUP HAVING IDENTIFIED IMMEDIATE IN
    INCREMENT INDEX INITIAL INSERT INTEGER INTERSECT INTO IS LEVEL LIKE LOCK LONG
    MAXEXTENTS MINUS MLSLABEL MODE MODIFY NOAUDIT NOCOMPRESS NOT NOWAIT NULL NUMBER OF
    OFFLINE ON ONLINE OPTION OR ORDER PCTFREE PRIOR PRIVILEGES PUBLIC RAW RENAME RESOURCE
    REVOKE ROW ROWID ROWNUM ROWS SELECT SESSION SET SHARE SIZE SMALLINT START SUCCESSFUL
    SYNONYM SYSDATE TABLE THEN TO TRIGGER UID UNION UNIQUE UPDATE USER VALIDATE VALUES
    VARCHAR VARCHAR2 VIEW WHENEVER WHERE WITH
"""
RESERVED = frozenset(_RESERVED_WORDS.split())

# Parser gaps, by the first words of the statement: sqlfluff cannot parse these valid
# Oracle statements, sqlglot can (and the reverse for ALTER SESSION, for changing a
# column's type and for disabling or enabling a trigger, which sqlglot keeps as opaque
# commands, and for triggers, whose PL/SQL bodies sqlglot does not parse).
SQLFLUFF_GAPS = ("SET TRANSACTION", "SAVEPOINT", "ROLLBACK TO SAVEPOINT")
SQLGLOT_GAPS = (
    "ALTER SESSION",
    "ALTER TABLE PF_FEATURE_FLAGS MODIFY",
    "CREATE OR REPLACE TRIGGER",
    "ALTER TRIGGER",
)

_BANNED_WORDS = {
    "LIMIT": "LIMIT does not exist before Oracle 23ai: use FETCH FIRST n ROWS ONLY",
    "AUTOINCREMENT": "AUTOINCREMENT is not Oracle: use an identity column or a sequence",
    "SERIAL": "SERIAL is not an Oracle type",
    "BOOLEAN": "BOOLEAN columns need Oracle 23ai: use NUMBER(1) with a CHECK",
    "TEXT": "TEXT is not an Oracle type: use VARCHAR2 or CLOB",
    "TRUE": "TRUE/FALSE literals need Oracle 23ai: use 1/0",
    "FALSE": "TRUE/FALSE literals need Oracle 23ai: use 1/0",
}
_BANNED_PHRASES = {
    r"\bON\s+CONFLICT\b": "ON CONFLICT is not Oracle: use MERGE",
    r"\bIF\s+(NOT\s+)?EXISTS\b": "IF [NOT] EXISTS in DDL needs Oracle 23ai",
    r"`": "backticks are not Oracle quoting",
    r"\bRETURNING\b(?![\s\S]*\bINTO\b)": "RETURNING needs INTO in Oracle",
}
_PARTIAL_INDEX = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\b[\s\S]*\bWHERE\b", re.IGNORECASE)
_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_STRING = re.compile(r"'(?:[^']|'')*'")


@lru_cache(maxsize=1)
def _linter() -> Linter:
    return Linter(config=FluffConfig(overrides={"dialect": "oracle"}))


def _starts(sql: str, prefixes: tuple[str, ...]) -> bool:
    head = " ".join(sql.split()).upper()
    return head.startswith(prefixes)


def sqlglot_problems(sql: str, *, exempt: bool = True) -> list[str]:
    if exempt and _starts(sql, SQLGLOT_GAPS):
        return []
    try:
        parsed = sqlglot.parse(sql, read="oracle", error_level=ErrorLevel.RAISE)
    except sqlglot.errors.SqlglotError as error:
        return [f"sqlglot (oracle) cannot parse it: {str(error).splitlines()[0]}"]
    if len(parsed) != 1 or parsed[0] is None:
        return [f"sqlglot found {len(parsed)} statements, expected one"]
    if isinstance(parsed[0], exp.Command):
        return ["sqlglot only recognised it as an opaque command, not as SQL it understands"]
    return []


def sqlfluff_problems(sql: str, *, exempt: bool = True) -> list[str]:
    if exempt and _starts(sql, SQLFLUFF_GAPS):
        return []
    # sqlfluff's Oracle grammar lacks the IS JSON condition; check the rest of the
    # statement with an equivalent condition in its place.
    text = re.sub(r"\bIS\s+JSON\b", "IS NOT NULL", sql, flags=re.IGNORECASE)
    parsed = _linter().parse_string(text)
    if parsed.tree is None:
        return ["sqlfluff (oracle) produced no parse tree"]
    bad = [segment.raw for segment in parsed.tree.recursive_crawl("unparsable")]
    return [f"sqlfluff (oracle) cannot parse: {' '.join(b.split())[:80]!r}" for b in bad]


def construct_problems(sql: str) -> list[str]:
    """Constructs Oracle 19c does not have, and names it refuses."""
    problems = []
    bare = _STRING.sub("''", sql)
    if _PARTIAL_INDEX.match(bare):
        problems.append("a partial index (CREATE INDEX ... WHERE) is not Oracle")
    for pattern, why in _BANNED_PHRASES.items():
        if re.search(pattern, bare, re.IGNORECASE):
            problems.append(why)
    for token in sqlglot.tokenize(bare, read="oracle"):
        if token.token_type == TokenType.PLACEHOLDER and token.text == "?":
            problems.append("'?' placeholders are not Oracle: use :named binds")
        word = token.text.upper()
        if token.token_type != TokenType.STRING and word in _BANNED_WORDS:
            problems.append(_BANNED_WORDS[word])
    for name in _BIND.findall(bare):
        if name.upper() in RESERVED:
            problems.append(f"bind :{name} is a reserved word (ORA-01745)")
        if len(name) > MAX_IDENTIFIER:
            problems.append(f"bind :{name} is longer than {MAX_IDENTIFIER} characters")
    return problems


def identifier_problems(sql: str) -> list[str]:
    """Tables, columns, constraints and indexes a DDL statement names."""
    problems = []
    try:
        tree = sqlglot.parse_one(sql, read="oracle")
    except sqlglot.errors.SqlglotError:
        return []  # sqlglot_problems reports it
    for node in tree.find_all(exp.Identifier):
        name = node.name
        if name.upper() in RESERVED:
            problems.append(f"{name} is a reserved word in Oracle")
        if len(name) > MAX_IDENTIFIER:
            problems.append(f"{name} is longer than {MAX_IDENTIFIER} characters")
    return problems


def oracle_problems(sql: str) -> list[str]:
    """Everything wrong with `sql` as Oracle 19c SQL; empty when it is fine."""
    return [
        *sqlglot_problems(sql),
        *sqlfluff_problems(sql),
        *construct_problems(sql),
        *identifier_problems(sql),
    ]


def _keys(table: exp.Create) -> set[tuple[str, ...]]:
    """The column lists of a table's PRIMARY KEY and UNIQUE constraints."""
    keys: set[tuple[str, ...]] = set()
    for column in table.find_all(exp.ColumnDef):
        for constraint in column.constraints:
            if isinstance(
                constraint.kind, exp.PrimaryKeyColumnConstraint | exp.UniqueColumnConstraint
            ):
                keys.add((column.name.lower(),))
    for constraint in table.find_all(exp.Constraint):
        for inner in constraint.expressions:
            if isinstance(inner, exp.PrimaryKey):
                keys.add(tuple(e.name.lower() for e in inner.expressions))
            elif isinstance(inner, exp.UniqueColumnConstraint) and inner.this is not None:
                keys.add(tuple(e.name.lower() for e in inner.this.expressions))
    return keys


def duplicate_indexes(statements: list[str]) -> list[str]:
    """Indexes whose column list equals that of a PRIMARY KEY or UNIQUE constraint of the
    same table: Oracle refuses them (ORA-01408), as the specification's idx_config_key
    would be."""
    keyed: dict[str, set[tuple[str, ...]]] = {}
    indexes: list[tuple[str, str, tuple[str, ...]]] = []
    for sql in statements:
        if _starts(sql, SQLGLOT_GAPS):
            continue  # creates no table and no index
        tree = sqlglot.parse_one(sql, read="oracle")
        if not isinstance(tree, exp.Create):
            continue
        if tree.kind == "TABLE":
            keyed.setdefault(tree.this.this.name.lower(), set()).update(_keys(tree))
        elif tree.kind == "INDEX":
            index = tree.this
            columns = tuple(c.name.lower() for c in index.find_all(exp.Column))
            indexes.append((index.name.lower(), index.args["table"].name.lower(), columns))
    return [
        f"{name} duplicates a key of {table} {columns} (ORA-01408)"
        for name, table, columns in indexes
        if columns in keyed.get(table, set())
    ]


__all__ = [
    "RESERVED",
    "SQLFLUFF_GAPS",
    "SQLGLOT_GAPS",
    "construct_problems",
    "duplicate_indexes",
    "oracle_problems",
    "sqlfluff_problems",
    "sqlglot_problems",
]

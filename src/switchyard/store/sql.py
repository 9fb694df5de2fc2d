"""Statements: one body of portable SQL with `:named` binds, rendered per dialect.

A statement's text may hold two kinds of marker, and nothing else differs between
Oracle and SQLite:

- `{row_limit}`: where the dialect puts its row limit (`FETCH FIRST :row_limit ROWS
  ONLY` or `LIMIT :row_limit`), bound through `row_limit`;
- `{name}`: an IN list, expanded to `:name_0, :name_1, ...`. Lists are padded (with their
  last value) to one of a few fixed sizes, so every text a dialect can ever emit is
  known in advance and the tests parse each one with an Oracle grammar.

Every statement registers itself in `REGISTRY` when its module is imported.

A statement whose rows hold a config key's values declares which columns they are
(`SealedColumns`): only those may hold sealed text, and only in rows whose
`sealed_with` column names the data key that sealed them (`store.sealing`). Nothing in
a column's text decides it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

ROW_LIMIT = "row_limit"
LIST_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000)
"""Oracle allows at most 1000 expressions in one IN list (ORA-01795)."""
MAX_LIST = LIST_SIZES[-1]

_MARKER = re.compile(r"\{(\w+)\}")

REGISTRY: list[Sql] = []


SEALED_WITH = "sealed_with"
"""The column of a row that names the data key its value columns are sealed with (NULL
when they are stored plain). Only the sealing writer sets it."""


@dataclass(frozen=True, slots=True)
class SealedColumns:
    """The columns of a table that hold a config key's values, and so are sealed in rows
    of an is_encrypted key. `values` hold the envelope text itself; `documents` must hold
    JSON, so they hold it wrapped in a one-member object (see `store.sealing`)."""

    values: tuple[str, ...] = ()
    documents: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.values, *self.documents)


@dataclass(frozen=True, eq=False)
class Sql:
    """One statement. `name` says what it is for, in test reports and slow-query logs.
    `sealed`: the columns of its rows that may be sealed, for a statement that reads a
    table holding values (it must then select `sealed_with`, `config_key` and, where the
    table has one, `environment`)."""

    name: str
    text: str
    sealed: SealedColumns | None = None
    lists: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        markers = tuple(m for m in _MARKER.findall(self.text) if m != ROW_LIMIT)
        object.__setattr__(self, "lists", markers)
        if self.sealed is not None and SEALED_WITH not in self.text:
            raise ValueError(f"{self.name} reads sealable columns but not {SEALED_WITH}")
        REGISTRY.append(self)

    @property
    def limited(self) -> bool:
        return "{" + ROW_LIMIT + "}" in self.text

    def expand(self, sizes: dict[str, int], row_limit_clause: str) -> str:
        """The text with its markers filled: IN lists of the given sizes, the row limit
        clause of a dialect."""

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name == ROW_LIMIT:
                return row_limit_clause
            return ", ".join(f":{name}_{i}" for i in range(sizes[name]))

        return _MARKER.sub(fill, self.text)

    def every_expansion(self) -> Iterator[dict[str, int]]:
        """Every combination of list sizes this statement can be rendered with."""
        return Sql._combinations(self.lists)

    @staticmethod
    def _combinations(names: Sequence[str]) -> Iterator[dict[str, int]]:
        if not names:
            yield {}
            return
        first, *rest = names
        for size in LIST_SIZES:
            for others in Sql._combinations(rest):
                yield {first: size, **others}


def list_size(count: int) -> int:
    """The padded size a list of `count` values is rendered at. Raises ValueError for an
    empty list (callers skip the query) or one longer than MAX_LIST (callers chunk)."""
    if count < 1:
        raise ValueError("an IN list needs at least one value")
    for size in LIST_SIZES:
        if size >= count:
            return size
    raise ValueError(f"an IN list holds at most {MAX_LIST} values; got {count}")


def chunks(values: Sequence[str], size: int = MAX_LIST) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


__all__ = [
    "LIST_SIZES",
    "MAX_LIST",
    "REGISTRY",
    "ROW_LIMIT",
    "SEALED_WITH",
    "SealedColumns",
    "Sql",
    "chunks",
    "list_size",
]

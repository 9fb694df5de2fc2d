"""What a repository needs of a database connection: run one statement, get rows back.

Rows are plain dicts keyed by lower-case column names, whatever the driver. Binds are
prepared once here for both backends: datetimes in the dialect's form, booleans as 0/1,
and the empty string as NULL, because Oracle stores '' as NULL and SQLite must not
quietly behave otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from switchyard.store.dialect import Dialect
from switchyard.store.sql import Sql, list_size

_BIND = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_STRING = re.compile(r"'(?:[^']|'')*'")

Row = dict[str, Any]
Binds = Mapping[str, object]
Lists = Mapping[str, Sequence[object]]


class Session(Protocol):
    dialect: Dialect

    async def fetch_all(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> list[Row]: ...

    async def fetch_one(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> Row | None: ...

    async def execute(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> int:
        """Runs a statement that returns no rows; the number of rows it touched."""
        ...


class SessionBase:
    """What every backend's connection shares: `fetch_one` on top of `fetch_all`."""

    async def fetch_all(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> list[Row]:
        raise NotImplementedError

    async def fetch_one(
        self, sql: Sql, binds: Binds | None = None, lists: Lists | None = None
    ) -> Row | None:
        rows = await self.fetch_all(sql, binds, lists)
        return rows[0] if rows else None


def prepare(
    dialect: Dialect, sql: Sql, binds: Binds | None, lists: Lists | None
) -> tuple[str, dict[str, object]]:
    """The text to send and the binds to send with it.

    Only the binds the text names are sent: a repository may pass one dict of a row's
    values to its INSERT and to its UPDATE, but Oracle refuses a bind the statement does
    not name (DPY-4008), where SQLite would ignore it. A bind the text names and the
    caller left out raises ValueError on both."""
    sizes: list[tuple[str, int]] = []
    given: dict[str, object] = dict(binds or {})
    for name in sql.lists:
        values = (lists or {})[name]
        size = list_size(len(values))
        sizes.append((name, size))
        for index in range(size):
            given[f"{name}_{index}"] = values[min(index, len(values) - 1)]
    text = dialect.render(sql, tuple(sizes))
    wanted = placeholders(text)
    missing = wanted - given.keys()
    if missing:
        raise ValueError(f"{sql.name}: no value for {', '.join(sorted(missing))}")
    return text, {name: _bind(dialect, given[name]) for name in wanted}


@lru_cache(maxsize=4096)
def placeholders(text: str) -> frozenset[str]:
    """The `:name` binds a statement's text names (string literals left out)."""
    return frozenset(_BIND.findall(_STRING.sub("''", text)))


def _bind(dialect: Dialect, value: object) -> object:
    if value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return dialect.bind_time(value)
    return value


__all__ = ["Binds", "Lists", "Row", "Session", "SessionBase", "placeholders", "prepare"]

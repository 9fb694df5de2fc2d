"""What a repository needs of a database connection: run one statement, get rows back.

Rows are plain dicts keyed by lower-case column names, whatever the driver. Binds are
prepared once here for both backends: datetimes in the dialect's form, booleans as 0/1,
and the empty string as NULL, because Oracle stores '' as NULL and SQLite must not
quietly behave otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from switchyard.store.dialect import Dialect
from switchyard.store.sql import Sql, list_size

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


def prepare(
    dialect: Dialect, sql: Sql, binds: Binds | None, lists: Lists | None
) -> tuple[str, dict[str, object]]:
    """The text to send and the binds to send with it."""
    prepared: dict[str, object] = {}
    for name, value in (binds or {}).items():
        prepared[name] = _bind(dialect, value)
    sizes: list[tuple[str, int]] = []
    for name in sql.lists:
        values = (lists or {})[name]
        size = list_size(len(values))
        sizes.append((name, size))
        for index in range(size):
            prepared[f"{name}_{index}"] = _bind(dialect, values[min(index, len(values) - 1)])
    return dialect.render(sql, tuple(sizes)), prepared


def _bind(dialect: Dialect, value: object) -> object:
    if value == "":
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return dialect.bind_time(value)
    return value


__all__ = ["Binds", "Lists", "Row", "Session", "prepare"]

"""Column values to domain values and back, the same for every backend."""

from __future__ import annotations

import json
from typing import Any

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.keys import check_key
from switchyard.domain.models import JSONValue
from switchyard.domain.values import decode_value, encode_value


def to_json(value: JSONValue) -> str | None:
    """Canonical JSON text for a value column (NULL for no value)."""
    return encode_value(value)


def document(value: object) -> str | None:
    """JSON text for a document column (`IS JSON` on Oracle), NULL for None."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def from_json(value: Any) -> JSONValue:
    """A JSON column's value. python-oracledb may hand over columns with an `IS JSON`
    check already parsed; text is parsed here."""
    if value is None or isinstance(value, dict | list):
        return value
    return decode_value(str(value))


def strings(value: Any) -> tuple[str, ...]:
    """A JSON array of strings column as a tuple (empty for NULL)."""
    parsed = from_json(value)
    if not isinstance(parsed, list):
        return ()
    return tuple(str(item) for item in parsed)


def flag(value: Any) -> bool:
    """A NUMBER(1) / INTEGER boolean column."""
    return bool(value)


def optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def json_list(values: tuple[Any, ...]) -> str | None:
    """A JSON array column: NULL when empty, so that "none" has one spelling."""
    return document(list(values)) if values else None


def key_cursor(cursor: str | None) -> str | None:
    """A page cursor that is the last key of the previous page. Every stored key passed
    `check_key`, so anything that does not is no cursor a repository issued."""
    if cursor is None:
        return None
    try:
        check_key(cursor)
    except InvalidArgument:
        raise InvalidArgument.field(
            "page_token", "is not a token this service issued; start again without it"
        ) from None
    return cursor


__all__ = [
    "document",
    "flag",
    "from_json",
    "json_list",
    "key_cursor",
    "optional_float",
    "strings",
    "to_json",
]

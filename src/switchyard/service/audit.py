"""The rows a change leaves behind, as its history row records them (`rows_after`).

A history row's `old_value` and `new_value` are what a person reads, and for a config
they are the value, not the row that holds it: an override's expiry, its schedule and
the stamps of every row would be lost. `rows_after` records each row the change wrote,
whole (every field of the domain object), so that replaying the history from an empty
database rebuilds every table as it is: the audit trail is complete, and
tests/service/test_history_replay.py measures it.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime

from switchyard.domain.models import Environment, JSONValue


def row_document(row: object) -> dict[str, JSONValue]:
    """A domain object (a dataclass) as JSON: every field, so that a field added to it is
    recorded without anyone remembering to. Datetimes are ISO 8601, enums their values,
    tuples lists, nested dataclasses objects."""
    assert dataclasses.is_dataclass(row) and not isinstance(row, type)
    return {field.name: _json(getattr(row, field.name)) for field in dataclasses.fields(row)}


def environment_row(
    environment: Environment, *, updated_at: datetime, created: bool
) -> dict[str, JSONValue]:
    """An environment's row: `Environment` holds no stamps, so they are added; a change
    that creates the row sets `created_at`, one that updates it leaves it as it was."""
    row = row_document(environment)
    row["updated_at"] = updated_at.isoformat()
    if created:
        row["created_at"] = updated_at.isoformat()
    return row


def _json(value: object) -> JSONValue:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return _json(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return row_document(value)
    if isinstance(value, tuple | list):
        return [_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json(item) for key, item in value.items()}
    assert value is None or isinstance(value, bool | int | float | str), type(value)
    return value


__all__ = ["environment_row", "row_document"]

"""Protobuf fields as the plain JSON values the command line prints: enum numbers as
short lower-case names (`CONFIG_TYPE_NUMBER` is `number`), timestamps as ISO 8601 text,
durations as seconds. Every command's JSON and YAML shape is built from these, so that
one field reads the same in every command."""

from __future__ import annotations

from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from switchyard.client import enum_name, from_value


def moment(message: Any, field: str) -> str | None:
    """The timestamp `field` of `message` as ISO 8601 UTC text; None when it is unset
    (protobuf cannot tell an unset Timestamp from the epoch otherwise)."""
    if not message.HasField(field):
        return None
    stamp: timestamp_pb2.Timestamp = getattr(message, field)
    return stamp.ToDatetime().isoformat(timespec="seconds") + "Z"


def seconds(duration: duration_pb2.Duration) -> float:
    """A Duration as seconds (0 for an unset one)."""
    return duration.seconds + duration.nanos / 1e9


def value_of(message: Any, field: str) -> Any:
    """The JSON value of the google.protobuf.Value `field`; None when it is unset."""
    if not message.HasField(field):
        return None
    return from_value(getattr(message, field))


def list_of(values: struct_pb2.ListValue) -> list[Any]:
    """A ListValue (a history diff, say) as a Python list."""
    return [from_value(item) for item in values.values]


__all__ = ["enum_name", "list_of", "moment", "seconds", "value_of"]

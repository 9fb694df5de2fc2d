"""`google.protobuf.Value` <-> plain Python values.

Switchyard stores JSON, and JSON numbers travel as doubles. A whole number comes back as
an `int` (60, not 60.0), because that is what `json.loads` would give and what code
reading `api.timeout` expects; other numbers come back as `float`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

# Doubles represent every integer up to 2**53 exactly; beyond, an int would claim a
# precision the value does not have.
_EXACT_INTEGERS = 2**53


def from_value(value: struct_pb2.Value) -> Any:
    """The Python value a `google.protobuf.Value` carries: None, bool, int, float, str,
    list or dict. An unset Value reads as None."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _EXACT_INTEGERS:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {name: from_value(item) for name, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [from_value(item) for item in value.list_value.values]
    return None


def to_value(python: Any) -> struct_pb2.Value:
    """The `google.protobuf.Value` for a JSON-like Python value (None, bool, int, float,
    str, a list or tuple of those, a mapping with string keys). Raises TypeError for
    anything else, here rather than as an obscure serialisation error later."""
    out = struct_pb2.Value()
    _fill(out, python)
    return out


def _fill(out: struct_pb2.Value, python: Any) -> None:
    if python is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(python, bool):
        out.bool_value = python
    elif isinstance(python, int | float):
        out.number_value = python
    elif isinstance(python, str):
        out.string_value = python
    elif isinstance(python, list | tuple):
        out.list_value.SetInParent()
        for item in python:
            _fill(out.list_value.values.add(), item)
    elif isinstance(python, Mapping):
        out.struct_value.SetInParent()
        for name, item in python.items():
            if not isinstance(name, str):
                raise TypeError(f"object keys must be strings, not {type(name).__name__}")
            _fill(out.struct_value.fields[name], item)
    else:
        raise TypeError(f"{type(python).__name__} is not a JSON value")


def to_timestamp(moment: datetime) -> timestamp_pb2.Timestamp:
    """A Timestamp for a datetime; a naive datetime is taken to be UTC (protobuf's rule)."""
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(moment)
    return out


__all__ = ["from_value", "to_timestamp", "to_value"]

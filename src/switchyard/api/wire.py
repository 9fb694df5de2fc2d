"""What a request may be on the wire, checked before any handler reads it.

The interceptor (`api.interceptor`) applies both checks here to every call of every
method the server answers, whatever its service (Switchyard's own, flagd's, Envoy's,
health and reflection), so that no handler, mapping or store ever meets a request that
protobuf itself would call invalid:

- `tolerant` decodes a request's bytes and, where protobuf cannot (truncated or corrupt
  bytes, a string field that is not UTF-8, nesting deeper than protobuf's limit of 100),
  hands the handler a `Malformed` marker instead of raising inside the framework (which
  answers UNKNOWN with the parser's exception text);
- `check_request` refuses the values the well-known types define as invalid: a
  Timestamp outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z, a Duration
  beyond ±10,000 years or with nanos out of range, and a number JSON cannot carry (NaN,
  Infinity) in a Struct, Value, ListValue or any float or double field. Each refusal names
  the field by its path in the request (`writes[3].set_value.expires_at`,
  `flag.success_metrics["rate"]`) and the valid range.

Both are about the request's shape only: whether a valid time or number makes sense
(an expiry in the past, a rate above 1) is the domain's to say.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from switchyard.domain.errors import FieldViolation, InvalidArgument

_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_VALUE = "google.protobuf.Value"
_STRUCT = "google.protobuf.Struct"
_LIST = "google.protobuf.ListValue"
_LEAVES = frozenset({_TIMESTAMP, _DURATION, _VALUE, _STRUCT, _LIST})
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})

TIMESTAMP_SECONDS = (-62_135_596_800, 253_402_300_799)
"""0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, as google/protobuf/timestamp.proto
defines the range."""
DURATION_SECONDS = 315_576_000_000
"""About 10,000 years, as google/protobuf/duration.proto defines the range."""
NANOS = 999_999_999

_TIMESTAMP_RANGE = (
    "is out of range: a Timestamp lies from 0001-01-01T00:00:00Z to "
    "9999-12-31T23:59:59.999999999Z (seconds from -62135596800 to 253402300799, "
    "nanos from 0 to 999999999)"
)
_DURATION_RANGE = (
    "is out of range: a Duration lies within ±10,000 years (seconds from -315576000000 to "
    "315576000000, nanos from -999999999 to 999999999 with the sign of seconds)"
)
_MOST_REPORTED = 10
"""Violations named in one answer: enough to fix a request in one go, few enough that
the status stays far below the 8 KiB of metadata clients accept by default."""
_KEY_SHOWN = 64
"""Characters of a Struct key shown in a field path; longer keys are cut."""


# --- decoding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands in for a request whose bytes are not a message of the method's request
    type; the interceptor answers it with INVALID_ARGUMENT before the handler runs."""

    type_name: str
    problem: str

    def error(self) -> InvalidArgument:
        return InvalidArgument(f"the request is not a valid {self.type_name}: {self.problem}")


def _problem(error: Exception) -> str:
    """What is wrong with the bytes, in words, from protobuf's parser error (whose
    text names the parser's internals, so it is not passed on as it is)."""
    text = str(error)
    if "UTF-8" in text:
        return "a string field holds bytes that are not UTF-8"
    if "Depth" in text or "recursion" in text.lower():
        return "its messages are nested deeper than protobuf's limit of 100 levels"
    return "its bytes are not protobuf wire format (truncated or corrupt)"


def tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserialize` (a request type's `FromString`), answering `Malformed` where it
    would raise. None (raw bytes handed to the handler) stays None."""
    if deserialize is None:
        return None
    descriptor = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
    type_name = f"{descriptor.full_name} message" if descriptor is not None else "message"

    def decode(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # a parser may raise anything on hostile bytes
            return Malformed(type_name, _problem(error))

    return decode


# --- the ranges of the well-known types ---------------------------------------------------


class _Enough(Exception):
    """Ends a walk that has found as many violations as one answer names."""


def check_request(message: object) -> None:
    """Raises InvalidArgument naming every field of `message` (up to ten) that holds an
    out-of-range Timestamp or Duration or a non-finite number. Anything but a protobuf
    message (raw bytes, for a method that takes them) passes."""
    if not isinstance(message, Message):
        return
    kind = message.DESCRIPTOR.full_name
    if kind not in _LEAVES and not _plan(message.DESCRIPTOR):
        return
    found: list[FieldViolation] = []
    more = False
    try:
        if kind in _LEAVES:  # a method whose request is itself a Struct, Timestamp, ...
            _well_known(kind, message, "request", found)
        else:
            _walk(message, "", found)
    except _Enough:
        more = True
    if found:
        text = "; ".join(f"{v.field}: {v.description}" for v in found)
        if more:
            text += f" (and more: only the first {_MOST_REPORTED} are named)"
        raise InvalidArgument(text, found)


_PLANS: dict[str, tuple[Any, ...]] = {}
"""By message type: the fields that may hold something `check_request` checks."""


def _map_value(field: Any) -> Any:
    """The value field of a map field's entries; None for a field that is no map."""
    if field.type != FieldDescriptor.TYPE_MESSAGE or not field.message_type.GetOptions().map_entry:
        return None
    return field.message_type.fields_by_name["value"]


def _target(field: Any) -> Any:
    """The message type a field holds (a map's values' type); None for scalars."""
    held = _map_value(field) or field
    return held.message_type if held.type == FieldDescriptor.TYPE_MESSAGE else None


def _plan(descriptor: Any) -> tuple[Any, ...]:
    """The fields of `descriptor` worth walking, computed once per type for every type
    it reaches (a fixed point, so that recursive types come out right)."""
    plan = _PLANS.get(descriptor.full_name)
    if plan is not None:
        return plan
    if descriptor.full_name in _LEAVES:
        return ()
    reached: dict[str, Any] = {}
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in reached or current.full_name in _LEAVES:
            continue
        reached[current.full_name] = current
        pending.extend(t for t in map(_target, current.fields) if t is not None)
    holding: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, current in reached.items():
            if name not in holding and any(_worth(f, holding) for f in current.fields):
                holding.add(name)
                changed = True
    for name, current in reached.items():
        _PLANS[name] = tuple(f for f in current.fields if _worth(f, holding))
    return _PLANS[descriptor.full_name]


def _worth(field: Any, holding: set[str]) -> bool:
    held = _map_value(field) or field
    if held.type in _FLOATS:
        return True
    target = _target(field)
    return target is not None and (target.full_name in _LEAVES or target.full_name in holding)


def _walk(message: Message, path: str, found: list[FieldViolation]) -> None:
    plan = _plan(message.DESCRIPTOR)
    if not plan:
        return
    wanted = {field.number for field in plan}
    for field, value in message.ListFields():
        if field.number not in wanted:
            continue
        name = f"{path}.{field.name}" if path else field.name
        inner = _map_value(field)
        if inner is not None:
            for key, item in value.items():
                _check(inner, item, f"{name}[{_key(key)}]", found)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check(field, item, f"{name}[{index}]", found)
        else:
            _check(field, value, name, found)


def _check(field: Any, value: Any, path: str, found: list[FieldViolation]) -> None:
    if field.type in _FLOATS:
        _finite(value, path, found)
    elif field.message_type.full_name in _LEAVES:
        _well_known(field.message_type.full_name, value, path, found)
    else:
        _walk(value, path, found)


def _well_known(kind: str, value: Any, path: str, found: list[FieldViolation]) -> None:
    if kind == _VALUE:
        _value(value, path, found)
    elif kind == _STRUCT:
        _struct(value, path, found)
    elif kind == _LIST:
        _list(value, path, found)
    elif kind == _TIMESTAMP:
        seconds, nanos = value.seconds, value.nanos
        if not (TIMESTAMP_SECONDS[0] <= seconds <= TIMESTAMP_SECONDS[1] and 0 <= nanos <= NANOS):
            _add(found, path, f"{_TIMESTAMP_RANGE}; got seconds={seconds}, nanos={nanos}")
    elif kind == _DURATION:
        seconds, nanos = value.seconds, value.nanos
        if (
            abs(seconds) > DURATION_SECONDS
            or abs(nanos) > NANOS
            or (seconds > 0 > nanos)
            or (seconds < 0 < nanos)
        ):
            _add(found, path, f"{_DURATION_RANGE}; got seconds={seconds}, nanos={nanos}")


def _value(value: Any, path: str, found: list[FieldViolation]) -> None:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        _finite(value.number_value, path, found)
    elif kind == "struct_value":
        _struct(value.struct_value, path, found)
    elif kind == "list_value":
        _list(value.list_value, path, found)


def _struct(struct: Any, path: str, found: list[FieldViolation]) -> None:
    for key, item in struct.fields.items():
        _value(item, f"{path}[{_key(key)}]", found)


def _list(values: Any, path: str, found: list[FieldViolation]) -> None:
    for index, item in enumerate(values.values):
        _value(item, f"{path}[{index}]", found)


def _finite(number: float, path: str, found: list[FieldViolation]) -> None:
    if not math.isfinite(number):
        shown = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
        _add(found, path, f"is {shown}: numbers must be finite (JSON has no NaN or Infinity)")


def _key(key: object) -> str:
    if not isinstance(key, str):
        return str(key)
    if len(key) > _KEY_SHOWN:
        key = key[: _KEY_SHOWN - 3] + "..."
    return json.dumps(key, ensure_ascii=False)


def _add(found: list[FieldViolation], path: str, description: str) -> None:
    if len(found) == _MOST_REPORTED:
        raise _Enough
    found.append(FieldViolation(path, description))


__all__ = [
    "DURATION_SECONDS",
    "NANOS",
    "TIMESTAMP_SECONDS",
    "Malformed",
    "check_request",
    "tolerant",
]

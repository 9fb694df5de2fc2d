"""What a request may be on the wire, checked as it is decoded, before any handler reads
it.

The interceptor (`api.interceptor`) decodes the requests of every method the server
answers, whatever its service (Switchyard's own, flagd's, Envoy's, health and
reflection), with `decoder`, so that no handler, mapping or store ever meets a request
protobuf itself calls invalid. A request comes out as its message, or as `Refused`:

- bytes that are not a message of the method's request type (truncated or corrupt, a
  string field that is not UTF-8, nesting deeper than protobuf's limit of 100), which
  grpc would otherwise answer with UNKNOWN and the parser's exception text;
- a message holding a value its well-known type defines as invalid: a Timestamp outside
  0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z, a Duration beyond ±10,000 years
  or with nanos out of range, a number JSON cannot carry (NaN, Infinity) in a Struct,
  Value, ListValue or any float or double field. The refusal names each such field by
  its path in the request (`writes[3].set_value.expires_at`,
  `flag.success_metrics["rate"]`) and the valid range.

Both are about the request's shape only: whether a valid time or number makes sense
(an expiry in the past, a rate above 1) is the domain's to say.

Cost: a walk visits only the fields whose types can hold such a value, and only the
Timestamps and Durations unless the bytes hold a pattern every non-finite float or
double has (a byte of 0xF0 or more, or 0x80 or more for a float, followed by 0x7F or
0xFF: the top bits of an all-ones exponent, little-endian). So a request without
Timestamps costs a scan of its bytes (GetValue, EvaluateFlag), and a 5,000-write batch
a walk of its writes' times.
"""

from __future__ import annotations

import json
import math
import re
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
_TIMES = frozenset({_TIMESTAMP, _DURATION})

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

_NON_FINITE_DOUBLE = re.compile(rb"[\xf0-\xff][\x7f\xff]")
_NON_FINITE_FLOAT = re.compile(rb"[\x80-\xff][\x7f\xff]")


@dataclass(frozen=True, slots=True)
class Refused:
    """Stands in for a request refused for its shape; the interceptor answers it with
    `error` (INVALID_ARGUMENT) before the handler runs. `message` is the request when
    its bytes could be read (so that the gate can still check who may send it)."""

    message: Message | None
    error: InvalidArgument


def decoder(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserialize` (a request type's `FromString`) answering `Refused` where it would
    raise or where the message holds an out-of-range value (see the module). None (raw
    bytes for the handler) stays None; a deserializer that is not a message type's is
    only made tolerant."""
    if deserialize is None:
        return None
    message_type = getattr(deserialize, "__self__", None)
    descriptor = getattr(message_type, "DESCRIPTOR", None)
    if descriptor is None:
        return _tolerant(deserialize, "the request is not a valid message")
    unreadable = f"the request is not a valid {descriptor.full_name} message"
    read = _tolerant(deserialize, unreadable)
    floats, times = False, descriptor.full_name in _TIMES
    if descriptor.full_name not in _LEAVES:
        plans = _plans(descriptor)
        if not (plans.full or plans.times):
            return read
        floats, times = plans.floats, bool(plans.times)
    suspect = _NON_FINITE_FLOAT if floats else _NON_FINITE_DOUBLE

    def decode(data: bytes) -> Any:
        message = read(data)
        if isinstance(message, Refused):
            return message
        full = suspect.search(data) is not None
        if not (full or times):
            return message
        error = _violations(message, full=full)
        return message if error is None else Refused(message, error)

    return decode


def _tolerant(deserialize: Callable[[bytes], Any], unreadable: str) -> Callable[[bytes], Any]:
    def read(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # a parser may raise anything on hostile bytes
            return Refused(None, InvalidArgument(f"{unreadable}: {_problem(error)}"))

    return read


def _problem(error: Exception) -> str:
    """What is wrong with the bytes, in words, from protobuf's parser error (whose
    text names the parser's internals, so it is not passed on as it is)."""
    text = str(error)
    if "UTF-8" in text:
        return "a string field holds bytes that are not UTF-8"
    if "Depth" in text or "recursion" in text.lower():
        return "its messages are nested deeper than protobuf's limit of 100 levels"
    return "its bytes are not protobuf wire format (truncated or corrupt)"


# --- the walk ------------------------------------------------------------------------------


class _Enough(Exception):
    """Ends a walk that has found as many violations as one answer names."""


# Where a value sits, built as the walk descends and made text only for a violation:
# (parent, name) for a field, (parent, index) for a list item, (parent, (key,)) for a
# map or Struct entry; None is the request itself.
_Path = tuple[Any, Any] | None
_Found = list[FieldViolation]
_Check = Callable[[Any, _Path, _Found], None]


def _violations(message: Message, *, full: bool) -> InvalidArgument | None:
    """The refusal of `message`'s out-of-range values (up to ten named), or None; with
    `full` false, of its Timestamps and Durations only."""
    kind = message.DESCRIPTOR.full_name
    found: _Found = []
    more = False
    try:
        if kind in _LEAVES:  # a method whose request is itself a Struct, Timestamp, ...
            if full or kind in _TIMES:
                _LEAVES[kind](message, (None, "request"), found)
        else:
            plans = _plans(message.DESCRIPTOR)
            steps = plans.full if full else plans.times
            if steps:
                _walk_with(steps, message, None, found, full)
    except _Enough:
        more = True
    if not found:
        return None
    text = "; ".join(f"{v.field}: {v.description}" for v in found)
    if more:
        text += f" (and more: only the first {_MOST_REPORTED} are named)"
    return InvalidArgument(text, found)


@dataclass(frozen=True, slots=True)
class _Step:
    """How to reach what one field holds: `check` takes one value (each item of a list,
    each value of a map); a nested message's check is None (walked by its own plan)."""

    name: str
    check: _Check | None
    how: int
    """_SINGLE (a message field: read when set), _SCALAR (a float or double), _LIST_OF
    or _MAP."""


_SINGLE, _SCALAR, _LIST_OF, _MAP = range(4)


@dataclass(frozen=True, slots=True)
class _Plans:
    """A message type's walks: every field that can hold an out-of-range value
    (`full`), and those that can hold a Timestamp or Duration (`times`); each a tuple of
    steps, or of (oneof name, {member: step}) for a oneof."""

    full: tuple[Any, ...]
    times: tuple[Any, ...]
    floats: bool
    """Whether a float (32-bit) field can be reached: its own byte pattern is wider."""


_PLANS: dict[str, _Plans] = {}


def _plans(descriptor: Any) -> _Plans:
    """The walks of `descriptor`, computed once per type for every type it reaches (a
    fixed point, so that recursive types come out right)."""
    plans = _PLANS.get(descriptor.full_name)
    if plans is not None:
        return plans
    reached: dict[str, Any] = {}
    pending = [descriptor]
    while pending:
        current = pending.pop()
        if current.full_name in reached or current.full_name in _LEAVES:
            continue
        reached[current.full_name] = current
        pending.extend(t for t in map(_target, current.fields) if t is not None)
    full = _holding(reached, lambda name: name in _LEAVES, floats=True)
    times = _holding(reached, lambda name: name in _TIMES, floats=False)
    floating = _holding(reached, lambda name: False, floats=True, only_float32=True)
    for name, current in reached.items():
        _PLANS[name] = _Plans(
            _steps(current, full, full=True),
            _steps(current, times, full=False),
            name in floating,
        )
    return _PLANS[descriptor.full_name]


def _held(field: Any) -> Any:
    """What a field holds: for a map, its entries' value field; else the field."""
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
        return field.message_type.fields_by_name["value"]
    return field


def _target(field: Any) -> Any:
    held = _held(field)
    return held.message_type if held.type == FieldDescriptor.TYPE_MESSAGE else None


def _holding(
    reached: dict[str, Any],
    leaf: Callable[[str], bool],
    *,
    floats: bool,
    only_float32: bool = False,
) -> set[str]:
    """The reached types from which a field `leaf` accepts (or, with `floats`, a float
    or double field) can be reached."""
    wanted = (
        {FieldDescriptor.TYPE_FLOAT}
        if only_float32
        else {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}
    )

    def reaches(field: Any, holding: set[str]) -> bool:
        held = _held(field)
        if floats and held.type in wanted:
            return True
        target = _target(field)
        return target is not None and (leaf(target.full_name) or target.full_name in holding)

    holding: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, current in reached.items():
            if name not in holding and any(reaches(f, holding) for f in current.fields):
                holding.add(name)
                changed = True
    return holding


def _steps(descriptor: Any, holding: set[str], *, full: bool) -> tuple[Any, ...]:
    steps: list[Any] = []
    oneofs: dict[str, dict[str, _Step]] = {}
    for field in descriptor.fields:
        step = _step(field, holding, full=full)
        if step is None:
            continue
        oneof = field.containing_oneof
        if oneof is not None and len(oneof.fields) > 2:  # one WhichOneof, not a HasField each
            oneofs.setdefault(oneof.name, {})[field.name] = step
        else:
            steps.append(step)
    steps.extend(oneofs.items())
    return tuple(steps)


def _step(field: Any, holding: set[str], *, full: bool) -> _Step | None:
    held = _held(field)
    how = _MAP if held is not field else (_LIST_OF if field.is_repeated else _SINGLE)
    if held.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return _Step(field.name, _finite, _SCALAR if how == _SINGLE else how) if full else None
    target = _target(field)
    if target is None:
        return None
    name = target.full_name
    if name in _LEAVES:
        return _Step(field.name, _LEAVES[name], how) if (full or name in _TIMES) else None
    return _Step(field.name, None, how) if name in holding else None


def _walk(message: Any, path: _Path, found: _Found, full: bool) -> None:
    plans = _PLANS.get(message.DESCRIPTOR.full_name) or _plans(message.DESCRIPTOR)
    steps = plans.full if full else plans.times
    if steps:
        _walk_with(steps, message, path, found, full)


def _walk_with(
    steps: tuple[Any, ...], message: Any, path: _Path, found: _Found, full: bool
) -> None:
    for planned in steps:
        if isinstance(planned, _Step):
            step = planned
            if step.how == _SINGLE and not message.HasField(step.name):
                continue
        else:
            member = message.WhichOneof(planned[0])
            if member is None or member not in planned[1]:
                continue
            step = planned[1][member]
        value = getattr(message, step.name)
        here = (path, step.name)
        check = step.check
        if step.how in (_SINGLE, _SCALAR):
            if check is None:
                _walk(value, here, found, full)
            else:
                check(value, here, found)
        elif step.how == _LIST_OF:
            for index, item in enumerate(value):
                if check is None:
                    _walk(item, (here, index), found, full)
                else:
                    check(item, (here, index), found)
        else:
            for key, item in value.items():
                if check is None:
                    _walk(item, (here, (key,)), found, full)
                else:
                    check(item, (here, (key,)), found)


def _value(value: Any, path: _Path, found: _Found) -> None:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        _finite(value.number_value, path, found)
    elif kind == "struct_value":
        _struct(value.struct_value, path, found)
    elif kind == "list_value":
        _list(value.list_value, path, found)


def _struct(struct: Any, path: _Path, found: _Found) -> None:
    for key, item in struct.fields.items():
        _value(item, (path, (key,)), found)


def _list(values: Any, path: _Path, found: _Found) -> None:
    for index, item in enumerate(values.values):
        _value(item, (path, index), found)


def _timestamp(value: Any, path: _Path, found: _Found) -> None:
    seconds, nanos = value.seconds, value.nanos
    if not (TIMESTAMP_SECONDS[0] <= seconds <= TIMESTAMP_SECONDS[1] and 0 <= nanos <= NANOS):
        _add(found, path, f"{_TIMESTAMP_RANGE}; got seconds={seconds}, nanos={nanos}")


def _duration(value: Any, path: _Path, found: _Found) -> None:
    seconds, nanos = value.seconds, value.nanos
    if (
        abs(seconds) > DURATION_SECONDS
        or abs(nanos) > NANOS
        or (seconds > 0 > nanos)
        or (seconds < 0 < nanos)
    ):
        _add(found, path, f"{_DURATION_RANGE}; got seconds={seconds}, nanos={nanos}")


def _finite(number: float, path: _Path, found: _Found) -> None:
    if not math.isfinite(number):
        shown = "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")
        _add(found, path, f"is {shown}: numbers must be finite (JSON has no NaN or Infinity)")


_LEAVES: dict[str, _Check] = {
    _TIMESTAMP: _timestamp,
    _DURATION: _duration,
    _VALUE: _value,
    _STRUCT: _struct,
    _LIST: _list,
}


def _text(path: _Path) -> str:
    """A path as a proto field path: `writes[3].set_value.expires_at`,
    `flag.success_metrics["rate"]` (keys of more than 64 characters cut)."""
    parts = []
    while path is not None:
        path, part = path
        if isinstance(part, str):
            parts.append(f".{part}" if path is not None else part)
        elif isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f"[{_key(part[0])}]")
    return "".join(reversed(parts))


def _key(key: object) -> str:
    if not isinstance(key, str):
        return str(key)
    if len(key) > _KEY_SHOWN:
        key = key[: _KEY_SHOWN - 3] + "..."
    return json.dumps(key, ensure_ascii=False)


def _add(found: _Found, path: _Path, description: str) -> None:
    if len(found) == _MOST_REPORTED:
        raise _Enough
    found.append(FieldViolation(_text(path), description))


__all__ = ["DURATION_SECONDS", "NANOS", "TIMESTAMP_SECONDS", "Refused", "decoder"]

"""Hypothesis strategies built from protobuf descriptors, for any request of any RPC.

`RequestStrategies(hints, skeletons).cases(method)` draws `Case`s for one method, of four
kinds, so that the fuzzing reaches past the first validation step as well as hitting it:

- `generated`: every field drawn from its descriptor (type, repeated, map, oneof,
  presence, enum with unknown numbers, nested and well-known messages), with boundary
  numbers, NaN and infinities, out-of-range timestamps, hostile texts and odd Unicode;
- `mutated`: a valid request (a skeleton, from the seeded server's real objects) with up
  to three fields, at any depth, replaced by drawn values or cleared;
- `huge`: a skeleton with one string, bytes or repeated field made huge (up to past the
  server's 4 MiB message limit);
- `wire`: bytes no protobuf encoder would write (truncated, bad UTF-8 in a string field,
  nesting deeper than 100, broken varints and lengths, random bytes), sent as they are.

Nothing here knows Switchyard: identifiers come from `hints` (field name -> strategy of
real values) and skeletons (message type -> valid instances), both given by the caller.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, text_format
from google.protobuf import message as message_errors
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor

# --- pools of hostile values ------------------------------------------------------------------

MARKER_TEXTS: tuple[str, ...] = (
    # Switchyard's own markers: sealed values and their envelopes.
    "enc:v1:x",
    "enc:v1:",
    "enc:v1:k1:AAAAAAAAAAAAAAAAAAAAAAAA",
    "enc:v2:x",
    '{"sealed": "enc:v1:x"}',
    '{"sealed":"enc:v1:AAAA","key_id":"k1"}',
    "swy_" + "A" * 43,
    "***",
    # SQL and LIKE/GLOB patterns.
    "' OR '1'='1",
    "'; DROP TABLE pf_system_config; --",
    "%",
    "_",
    "%%",
    "a%",
    "a_b",
    "\\",
    "\\%",
    "[a-z]",
    "*",
    "?",
    "%' ESCAPE '\\",
    # Costly regular expressions, the value that makes them backtrack, impossible crons.
    "(a+)+$",
    "(a|a)*$",
    "([a-z]+)*$",
    "(x+x+)+y",
    "a" * 24 + "!",
    "[",
    "(?P<x>",
    "\\1",
    "0 0 31 2 *",
    "0 0 30 2 *",
    "0 0 29 2 1",
    "* * * * *",
    "61 25 32 13 8",
    "@reboot",
    "*/0 * * * *",
    # Control characters and unusual Unicode (never lone surrogates: no wire can carry them).
    "\x00",
    "a\x00b",
    "\r\n",
    "\t",
    "\x1b[31m",
    "\x7f",
    "\u202e",
    "\u200f",
    "\u200b",
    "\ufeff",
    "e\u0301",
    "\u0301",
    "\U0001f600",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",
    "\U0010fffd",
    "\uffff",
    "\ufffe",
    "\u0130",
    "\u00df",
    "\u216b",
    "\U0001d518",
    # Texts other layers may read as something else.
    "null",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "-0",
    "true",
    "[]",
    "{}",
    '{"a":',
    "${jndi:ldap://x}",
    "{{7*7}}",
    "../../etc/passwd",
    "-",
    ".",
    "..",
    "a..b",
    ".a",
    "a.",
    " ",
    "",
)

INT32_EDGES = (0, 1, -1, 2, 100, 1000, 1001, 5000, 5001, 2**31 - 1, -(2**31))
INT64_EDGES = (*INT32_EDGES, 2**31, 2**32, 2**53 + 1, 2**63 - 1, -(2**63))
UINT32_EDGES = (0, 1, 2, 1000, 2**31, 2**32 - 1)
UINT64_EDGES = (*UINT32_EDGES, 2**32, 2**63, 2**64 - 1)
DOUBLE_EDGES = (
    math.nan,
    math.inf,
    -math.inf,
    0.0,
    -0.0,
    0.5,
    1.0,
    -1.0,
    100.0,
    1e308,
    -1e308,
    5e-324,
    2.0**53 + 1,
    2.0**63,
)
NOW = int(time.time())
TIMESTAMP_SECONDS = (
    0,
    -1,
    1,
    NOW,
    NOW - 3600,
    NOW + 60,
    NOW + 86_400 * 365,
    253402300799,  # 9999-12-31T23:59:59Z, the last valid second
    253402300800,  # one past it
    -62135596800,  # 0001-01-01T00:00:00Z, the first valid second
    -62135596801,
    2**63 - 1,
    -(2**63),
)
DURATION_SECONDS = (0, 1, -1, 60, 315576000000, 315576000001, -315576000001, 2**63 - 1)
NANOS = (0, 1, -1, 500_000_000, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))
HUGE_TEXT_BYTES = (10_000, 100_000, 1_000_000, 4_300_000)
"""Sizes of huge texts in UTF-8 bytes; the last is just over the server's 4 MiB message
limit, which the transport refuses."""
HUGE_LIST_LENGTHS = (1_001, 5_001, 20_000)
DEEP = (101, 150, 1000)
_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1, INT32_EDGES),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1, INT32_EDGES),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1, INT32_EDGES),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1, INT64_EDGES),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1, INT64_EDGES),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1, INT64_EDGES),
    FD.TYPE_UINT32: (0, 2**32 - 1, UINT32_EDGES),
    FD.TYPE_FIXED32: (0, 2**32 - 1, UINT32_EDGES),
    FD.TYPE_UINT64: (0, 2**64 - 1, UINT64_EDGES),
    FD.TYPE_FIXED64: (0, 2**64 - 1, UINT64_EDGES),
}
_MAX_DEPTH = 6
"""How deep generated messages nest (ProposedWrite > UpsertFlagRequest > FeatureFlag >
Ring > Timestamp is 4); deeper nesting is the wire kind's business."""


# --- what is drawn ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request to send: its bytes, and how to show it in a report."""

    kind: str
    payload: bytes
    summary: str
    dry_run: bool = False
    """The request asks for a dry run: an OK answer must change nothing either."""

    def __repr__(self) -> str:
        return f"Case({self.kind}, {len(self.payload)} bytes: {self.summary})"


Hints = Mapping[str, st.SearchStrategy[Any]]
"""Realistic values by field name (`key`, `environment`, ...) or by
`message.full_name:field` for one message's field."""
Skeletons = Mapping[str, Sequence[Message]]
"""Valid instances by message full name (they name the seeded server's objects)."""

CLEAR = object()
"""A drawn value meaning: clear the field."""


def text() -> st.SearchStrategy[str]:
    """Short texts of any code point but surrogates, markers and hostile patterns."""
    return st.one_of(st.text(max_size=40), st.sampled_from(MARKER_TEXTS))


def double() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(DOUBLE_EDGES), st.floats())


def integer(field_type: int) -> st.SearchStrategy[int]:
    low, high, edges = _INT_RANGES[field_type]
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def json_like(*, keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    """Python values a google.protobuf.Value can hold, NaN and infinities included, now
    and then nested past the parser's depth limit of 100."""
    leaves = st.one_of(st.none(), st.booleans(), double(), text())
    names = keys if keys is not None else text()
    shallow = st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
        max_leaves=12,
    )
    deep = st.sampled_from(DEEP[:2]).map(_nested_list)  # deeper: the wire kind
    return st.one_of(shallow, shallow, shallow, deep)


def _nested_list(depth: int) -> Any:
    value: Any = "deep"
    for _ in range(depth):
        value = [value]
    return value


def to_value(message: Message, python: Any) -> None:
    """Fills a google.protobuf.Value from a Python value (NaN kept: no check here)."""
    if python is None:
        message.null_value = 0
    elif isinstance(python, bool):
        message.bool_value = python
    elif isinstance(python, int | float):
        message.number_value = float(python)
    elif isinstance(python, str):
        message.string_value = python
    elif isinstance(python, list):
        to_list_value(message.list_value, python)
    else:
        to_struct(message.struct_value, python)


def to_list_value(message: Message, python: list[Any]) -> None:
    message.Clear()
    for item in python:
        to_value(message.values.add(), item)


def to_struct(message: Message, python: Mapping[str, Any]) -> None:
    message.Clear()
    for name, item in python.items():
        to_value(message.fields[name], item)


# --- the builder ----------------------------------------------------------------------------


class RequestStrategies:
    """Strategies for the requests of any method, from its input descriptor."""

    def __init__(self, hints: Hints | None = None, skeletons: Skeletons | None = None) -> None:
        self._hints = dict(hints or {})
        self._skeletons = dict(skeletons or {})
        self._messages: dict[tuple[str, int], st.SearchStrategy[Message]] = {}

    KINDS = (*["generated"] * 3, *["mutated"] * 4, *["wire"] * 2, "huge")
    """The four kinds, weighted by repetition: mutated skeletons reach deepest, huge
    requests are the slowest to send."""

    def cases(self, method: descriptor.MethodDescriptor) -> st.SearchStrategy[Case]:
        """Every kind of case for `method`'s requests."""
        request = method.input_type
        by_kind = {
            "generated": self.generated(request),
            "mutated": self.mutated(request),
            "huge": self.huge(request),
            "wire": self.wire(request),
        }
        return st.sampled_from(self.KINDS).flatmap(lambda kind: by_kind[kind])

    def generated(self, request: descriptor.Descriptor) -> st.SearchStrategy[Case]:
        return self.message(request).map(lambda m: case_of("generated", m))

    def mutated(self, request: descriptor.Descriptor) -> st.SearchStrategy[Case]:
        @st.composite
        def draw(data: st.DrawFn) -> Case:
            message = data(self.skeleton(request))
            paths = list(_field_paths(message.DESCRIPTOR))
            chosen = (
                data(st.lists(st.sampled_from(paths), max_size=3, unique=True)) if paths else []
            )
            for path in chosen:
                value = data(st.one_of(st.just(CLEAR), self.field(path[-1], len(path))))
                _assign_path(message, path, value)
            return case_of("mutated", message)

        return draw()

    def huge(self, request: descriptor.Descriptor) -> st.SearchStrategy[Case]:
        paths = [p for p in _field_paths(request) if _can_be_huge(p[-1])]
        if not paths:
            return self.generated(request)

        @st.composite
        def draw(data: st.DrawFn) -> Case:
            message = data(self.skeleton(request))
            path = data(st.sampled_from(paths))
            target = path[-1]
            if target.is_repeated:
                count = data(st.sampled_from(HUGE_LIST_LENGTHS))
                one = data(self.field(target, len(path), single=True))
                value: Any = [one] * count
                shown = f"{count} x {_short(one)}"
            elif target.type == FD.TYPE_BYTES:
                size = data(st.sampled_from(HUGE_TEXT_BYTES))
                value, shown = b"\xff" * size, f"{size} bytes"
            else:
                size = data(st.sampled_from(HUGE_TEXT_BYTES))
                unit = data(st.sampled_from(("a", "%", "\u00e9", "\U0001f600", "\x00")))
                length = size // len(unit.encode())
                value, shown = unit * length, f"{length} x {unit!r}"
            _assign_path(message, path, value)
            name = ".".join(f.name for f in path)
            return case_of("huge", message, f"{name} = {shown} in {_short(message, 200)}")

        return draw()

    def wire(self, request: descriptor.Descriptor) -> st.SearchStrategy[Case]:
        valid = self.message(request).map(lambda m: m.SerializeToString())
        strings = list(_string_paths(request))
        structured = _value_path(request)

        @st.composite
        def draw(data: st.DrawFn) -> Case:
            prefix = data(valid)
            how = data(st.sampled_from(_WIRE_DAMAGE))
            if how == "truncated" and len(prefix) > 1:
                cut = data(st.integers(1, len(prefix) - 1))
                payload = prefix[:cut]
            elif how == "bad_utf8" and strings:
                path = data(st.sampled_from(strings))
                payload = prefix + _nest(path, data(st.sampled_from(_BAD_UTF8)))
            elif how == "deep_value" and structured is not None:
                deep = _deep_value(data(st.sampled_from(DEEP)))
                if structured[-1].message_type.full_name == "google.protobuf.Struct":
                    deep = _length_delimited(  # Struct.fields {key: "k", value: deep}
                        1, _length_delimited(1, b"k") + _length_delimited(2, deep)
                    )
                payload = prefix + _nest(structured, deep)
            elif how == "deep_groups":
                payload = prefix + deep_groups(data(st.sampled_from(DEEP)))
            elif how == "random":
                payload = data(st.binary(min_size=1, max_size=64))
            else:
                payload = prefix + data(st.sampled_from(_BROKEN_TAILS))
            return Case("wire", payload, f"{how}: {payload[:48].hex()}")

        return draw()

    # --- messages and fields -------------------------------------------------------------

    def skeleton(self, request: descriptor.Descriptor) -> st.SearchStrategy[Message]:
        """A fresh copy of one of the request's skeletons (an empty message without)."""
        known = self._skeletons.get(request.full_name)
        if not known:
            return st.builds(GetMessageClass(request))
        return st.sampled_from(known).map(_copy)

    def message(self, message: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[Any]:
        """Messages of this type: skeletons (when there are) and generated ones."""
        cached = self._messages.get((message.full_name, depth))
        if cached is not None:
            return cached
        special = _WELL_KNOWN.get(message.full_name)
        if special is not None:
            built = special(self, message)
        else:
            generated = self._generated_message(message, depth)
            if message.full_name in self._skeletons and depth > 0:
                built = st.one_of(self.skeleton(message), generated)
            else:
                built = generated
        self._messages[(message.full_name, depth)] = built
        return built

    def _generated_message(
        self, message: descriptor.Descriptor, depth: int
    ) -> st.SearchStrategy[Message]:
        cls = GetMessageClass(message)
        if depth >= _MAX_DEPTH:
            return st.builds(cls)
        plain = {
            f.name: st.deferred(lambda f=f: self.field(f, depth + 1))
            for f in message.fields
            if _real_oneof(f) is None
        }
        oneofs = [o for o in message.oneofs if len(o.fields) > 1 or not o.name.startswith("_")]
        present = st.fixed_dictionaries({}, optional=plain)

        @st.composite
        def draw(data: st.DrawFn) -> Message:
            built = cls()
            values = data(present)
            for oneof in oneofs:
                chosen = data(st.sampled_from((None, *oneof.fields)))
                if chosen is not None:
                    values[chosen.name] = data(self.field(chosen, depth + 1))
            for name, value in values.items():
                _assign(built, message.fields_by_name[name], value)
            return built

        return draw()

    def field(
        self, target: descriptor.FieldDescriptor, depth: int, *, single: bool = False
    ) -> st.SearchStrategy[Any]:
        """Values of one field: a list for a repeated one, a dict for a map (unless
        `single`: one element)."""
        if _is_map(target):
            key_field = target.message_type.fields_by_name["key"]
            value_field = target.message_type.fields_by_name["value"]
            return st.dictionaries(
                self._single(key_field, depth), self._single(value_field, depth), max_size=4
            )
        element = self._single(target, depth)
        if target.is_repeated and not single:
            return st.lists(element, max_size=5)
        return element

    def _single(self, target: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        hint = self._hint(target)
        if target.type == FD.TYPE_MESSAGE:
            drawn = self.message(target.message_type, depth)
        elif target.type == FD.TYPE_ENUM:
            known = [v.number for v in target.enum_type.values]
            drawn = st.one_of(st.sampled_from(known), st.sampled_from((-1, 99, 2**31 - 1)))
        elif target.type == FD.TYPE_STRING:
            drawn = text()
        elif target.type == FD.TYPE_BYTES:
            drawn = st.binary(max_size=40)
        elif target.type == FD.TYPE_BOOL:
            drawn = st.booleans()
        elif target.type == FD.TYPE_DOUBLE:
            drawn = double()
        elif target.type == FD.TYPE_FLOAT:
            drawn = st.one_of(st.sampled_from(DOUBLE_EDGES[:5]), st.floats(width=32))
        else:
            drawn = integer(target.type)
        return drawn if hint is None else st.one_of(hint, drawn)

    def _hint(self, target: descriptor.FieldDescriptor) -> st.SearchStrategy[Any] | None:
        specific = self.hint(f"{target.containing_type.full_name}:{target.name}")
        return specific if specific is not None else self.hint(target.name)

    def hint(self, name: str) -> st.SearchStrategy[Any] | None:
        """The realistic values given for `name`, if any."""
        return self._hints.get(name)

    def names(self, hint: str) -> st.SearchStrategy[str]:
        """Texts, and the realistic values of `hint` among them."""
        known = self.hint(hint)
        return text() if known is None else st.one_of(known, text())

    def python_value(self) -> st.SearchStrategy[Any]:
        """What a google.protobuf.Value holds, object keys among the realistic ones."""
        return json_like(keys=self.names("struct_key"))


# --- well-known types ---------------------------------------------------------------------------


def _value(builder: RequestStrategies, message: descriptor.Descriptor) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    return builder.python_value().map(lambda python: _filled(cls(), to_value, python))


def _list_value(
    builder: RequestStrategies, message: descriptor.Descriptor
) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    items = st.lists(builder.python_value(), max_size=5)
    return items.map(lambda python: _filled(cls(), to_list_value, python))


def _struct(builder: RequestStrategies, message: descriptor.Descriptor) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    items = st.dictionaries(builder.names("struct_key"), builder.python_value(), max_size=5)
    return items.map(lambda python: _filled(cls(), to_struct, python))


def _timestamp(_: RequestStrategies, message: descriptor.Descriptor) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    return st.builds(
        cls,
        seconds=st.one_of(st.sampled_from(TIMESTAMP_SECONDS), integer(FD.TYPE_INT64)),
        nanos=st.one_of(st.sampled_from(NANOS), integer(FD.TYPE_INT32)),
    )


def _duration(_: RequestStrategies, message: descriptor.Descriptor) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    return st.builds(
        cls,
        seconds=st.one_of(st.sampled_from(DURATION_SECONDS), integer(FD.TYPE_INT64)),
        nanos=st.sampled_from(NANOS),
    )


def _field_mask(
    builder: RequestStrategies, message: descriptor.Descriptor
) -> st.SearchStrategy[Any]:
    cls = GetMessageClass(message)
    paths = st.lists(builder.names("field_mask_path"), max_size=4)
    return paths.map(lambda drawn: cls(paths=drawn))


_WELL_KNOWN: dict[str, Callable[[RequestStrategies, descriptor.Descriptor], Any]] = {
    "google.protobuf.Value": _value,
    "google.protobuf.ListValue": _list_value,
    "google.protobuf.Struct": _struct,
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _duration,
    "google.protobuf.FieldMask": _field_mask,
}
"""Messages whose fields mean more than their types say. The wrappers
(google.protobuf.Int64Value, ...) need nothing special: their one `value` field is drawn
by its type like any other."""


def _filled(message: Message, fill: Callable[[Message, Any], None], python: Any) -> Message:
    fill(message, python)
    return message


# --- setting fields -----------------------------------------------------------------------------


def _assign(message: Message, target: descriptor.FieldDescriptor, value: Any) -> None:
    """Sets a drawn value; values the Python runtime refuses (an unknown number of a
    closed enum) leave the field as it was: the wire kind sends what it cannot."""
    if value is CLEAR:
        message.ClearField(target.name)
        return
    try:
        if _is_map(target):
            container = getattr(message, target.name)
            container.clear()
            for key, item in value.items():
                if target.message_type.fields_by_name["value"].type == FD.TYPE_MESSAGE:
                    container[key].CopyFrom(item)
                else:
                    container[key] = item
        elif target.is_repeated:
            container = getattr(message, target.name)
            del container[:]
            if target.type == FD.TYPE_MESSAGE:
                for item in value:
                    container.add().CopyFrom(item)
            else:
                container.extend(value)
        elif target.type == FD.TYPE_MESSAGE:
            getattr(message, target.name).CopyFrom(value)
        else:
            setattr(message, target.name, value)
    except (ValueError, TypeError, message_errors.Error):
        pass


def _assign_path(message: Message, path: Sequence[descriptor.FieldDescriptor], value: Any) -> None:
    holder = message
    for step in path[:-1]:
        holder = getattr(holder, step.name)
    _assign(holder, path[-1], value)


def _field_paths(
    message: descriptor.Descriptor, prefix: tuple[descriptor.FieldDescriptor, ...] = ()
) -> Iterator[tuple[descriptor.FieldDescriptor, ...]]:
    """Paths to every field reachable through singular, non-well-known messages."""
    for target in message.fields:
        path = (*prefix, target)
        yield path
        nested = target.message_type
        if (
            nested is not None
            and not target.is_repeated
            and nested.full_name not in _WELL_KNOWN
            and not _is_map(target)
            and len(path) < 4
            and nested not in [p.message_type for p in prefix]
        ):
            yield from _field_paths(nested, path)


def _string_paths(
    message: descriptor.Descriptor,
) -> Iterator[tuple[descriptor.FieldDescriptor, ...]]:
    for path in _field_paths(message):
        if path[-1].type == FD.TYPE_STRING:
            yield path


def _value_path(message: descriptor.Descriptor) -> tuple[descriptor.FieldDescriptor, ...] | None:
    """A path to a google.protobuf.Value/Struct/ListValue field, where nesting has no
    bound in the schema; None when the request has none."""
    for path in _field_paths(message):
        nested = path[-1].message_type
        if nested is not None and nested.full_name == "google.protobuf.Value":
            return path
    for path in _field_paths(message):
        nested = path[-1].message_type
        if nested is not None and nested.full_name == "google.protobuf.Struct":
            return path
    return None


def _can_be_huge(target: descriptor.FieldDescriptor) -> bool:
    if _is_map(target):
        return False
    return target.is_repeated or target.type in (FD.TYPE_STRING, FD.TYPE_BYTES)


def _is_map(target: descriptor.FieldDescriptor) -> bool:
    nested = target.message_type
    return nested is not None and nested.GetOptions().map_entry


def _real_oneof(target: descriptor.FieldDescriptor) -> descriptor.OneofDescriptor | None:
    """The field's oneof, unless it is the synthetic one of a proto3 `optional`."""
    oneof = target.containing_oneof
    if oneof is None or (len(oneof.fields) == 1 and oneof.name.startswith("_")):
        return None
    return oneof


def _copy(message: Message) -> Message:
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def case_of(kind: str, message: Message, summary: str = "") -> Case:
    """A case sending `message`, shown as `summary` (its text otherwise, cut short)."""
    fields = message.DESCRIPTOR.fields_by_name
    dry_run = "dry_run" in fields and bool(message.dry_run)  # type: ignore[attr-defined]
    return Case(kind, message.SerializeToString(), summary or _short(message), dry_run=dry_run)


def _short(value: Any, limit: int = 400) -> str:
    if isinstance(value, Message):
        try:
            shown = text_format.MessageToString(value, as_one_line=True, as_utf8=True)
        except message_errors.Error:  # a map entry nested past the parser's depth limit
            shown = f"{value.DESCRIPTOR.name} of {value.ByteSize()} bytes, nested deep"
    else:
        shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(shown)} chars)"


# --- wire damage ---------------------------------------------------------------------------------

_WIRE_DAMAGE = (
    "truncated",
    "bad_utf8",
    "deep_value",
    "deep_groups",
    "random",
    "broken_tail",
)
_BAD_UTF8 = (
    b"\xff",
    b"\xc3\x28",
    b"a\x80b",
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xc0\xaf",  # overlong
)
_BROKEN_TAILS = (
    b"\x08" + b"\xff" * 11,  # a varint of more than ten bytes
    b"\x0a\xff\xff\xff\xff\x07ab",  # a length far past the end
    b"\x0a\x05ab",  # a length a little past the end
    b"\x00",  # field number 0
    b"\x0e",  # wire type 6
    b"\x0f",  # wire type 7
    b"\x0c",  # an end-group with no start
    b"\x0b",  # a start-group with no end
    b"\x0d\x01",  # a fixed32 cut short
    b"\xf8\xff\xff\xff\xff\x0f\x01",  # a field number past 2^29
)


def _varint(number: int) -> bytes:
    out = bytearray()
    number &= (1 << 64) - 1
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nest(path: Sequence[descriptor.FieldDescriptor], payload: bytes) -> bytes:
    """`payload` as the bytes of the last field of `path`, wrapped in its parents."""
    encoded = _length_delimited(path[-1].number, payload)
    for parent in reversed(path[:-1]):
        encoded = _length_delimited(parent.number, encoded)
    return encoded


def _deep_value(depth: int) -> bytes:
    """A google.protobuf.Value of lists in lists, `depth` deep."""
    encoded = _length_delimited(3, b"deep")  # string_value
    for _ in range(depth):
        item = _length_delimited(1, encoded)  # ListValue.values
        encoded = _length_delimited(6, item)  # Value.list_value
    return encoded


def deep_groups(depth: int) -> bytes:
    """Unknown groups in groups: valid wire format every message accepts, parsed
    recursively (the parser must find each group's end)."""
    number = 1999
    return _varint(number << 3 | 3) * depth + _varint(number << 3 | 4) * depth


__all__ = [
    "CLEAR",
    "MARKER_TEXTS",
    "Case",
    "Hints",
    "RequestStrategies",
    "Skeletons",
    "case_of",
    "deep_groups",
    "double",
    "integer",
    "json_like",
    "text",
    "to_list_value",
    "to_struct",
    "to_value",
]

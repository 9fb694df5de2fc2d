"""Values as a person reads and types them: display text, the layer that answered, diffs,
and the value a form's text stands for."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2

from switchyard.client import from_value
from switchyard.gen.v1 import config_pb2 as pb

SHORT = 60
"""How many characters of a value a table cell shows (the rest is in its title)."""

_TEXT_TYPES = {"string", "date", "url", "email", "duration", "cron"}


def value_of(message: Any, field: str) -> Any:
    """The JSON value of the `google.protobuf.Value` field `field`; None when unset."""
    if not message.HasField(field):
        return None
    return from_value(getattr(message, field))


def display(value: Any) -> str:
    """A JSON value as text: strings bare, everything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), ensure_ascii=False)


def short(text: str, limit: int = SHORT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def editable(value: Any, type_name: str) -> str:
    """The text a form shows for `value`, which `parse_input` reads back as `value`."""
    if value is None:
        return ""
    if type_name in _TEXT_TYPES and isinstance(value, str):
        return value
    if type_name in {"json", "array"}:
        return json.dumps(value, indent=2, ensure_ascii=False)
    return display(value)


class NotJson(ValueError):
    """A json or array key's text that is not JSON at all: the one check the console
    makes itself, since the API can only be sent a value."""


def parse_input(text: str, type_name: str) -> Any:
    """The value a form's text stands for, in the key's type. Text that does not fit the
    type is sent as text, so that the API refuses it with its own message (the console
    validates nothing the API validates). Raises NotJson for a json or array key's text
    that is not JSON."""
    stripped = text.strip()
    if type_name == "number":
        try:
            number = float(stripped)
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in stripped else number
    if type_name == "boolean":
        lowered = stripped.lower()
        return {"true": True, "false": False}.get(lowered, text)
    if type_name in {"json", "array"}:
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            where = f"line {error.lineno}, column {error.colno}"
            raise NotJson(f"not JSON: {error.msg} ({where})") from None
    return text


@dataclass(frozen=True)
class Layer:
    """Which layer answered a read, for a person: a label and a style."""

    label: str
    style: str
    title: str


def layer(reply: pb.GetValueResponse) -> Layer:
    source = reply.source
    if source == pb.VALUE_SOURCE_OVERRIDE:
        return Layer("override", "override", f"an override in {reply.source_environment}")
    if source == pb.VALUE_SOURCE_INHERITED_OVERRIDE:
        where = reply.source_environment
        return Layer(f"↑ {where}", "inherited", f"inherited from the override in {where}")
    if source == pb.VALUE_SOURCE_BASE:
        return Layer("base", "base", "the key's base value")
    if source == pb.VALUE_SOURCE_DEFAULT:
        return Layer("default", "default", "the key's default value")
    return Layer("unset", "unset", "no layer holds a value")


def moment(stamp: timestamp_pb2.Timestamp | None) -> datetime | None:
    if stamp is None or (stamp.seconds == 0 and stamp.nanos == 0):
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def when(stamp: datetime | None, now: datetime | None = None) -> str:
    """`3 min ago`, `2 h ago`, else the date: how long ago, as a glance needs it."""
    if stamp is None:
        return "never"
    seconds = ((now or datetime.now(UTC)) - stamp).total_seconds()
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class DiffLine:
    sign: str  # "-", "+" or " "
    text: str


def diff_lines(old: Any, new: Any) -> list[DiffLine]:
    """The lines that changed from `old` to `new`, as pretty JSON (strings bare), with
    the unchanged lines around them: what a reviewer reads."""
    before = _lines(old)
    after = _lines(new)
    out: list[DiffLine] = []
    for line in difflib.unified_diff(before, after, n=2, lineterm=""):
        if line.startswith(("---", "+++", "@@")):
            continue
        out.append(DiffLine(line[:1], line[1:]))
    return out


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines() or [""]
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


__all__ = [
    "SHORT",
    "DiffLine",
    "Layer",
    "NotJson",
    "diff_lines",
    "display",
    "editable",
    "layer",
    "moment",
    "parse_input",
    "short",
    "value_of",
    "when",
]

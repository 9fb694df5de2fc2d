"""Generated enums as people and scripts read them."""

from __future__ import annotations

from typing import Any


def enum_name(enum: Any, number: int) -> str:
    """The name of `number` in a generated enum (`pb.ValueSource`) without the enum's
    prefix, in lower case: `override` for VALUE_SOURCE_OVERRIDE. The prefix is the one of
    the enum's zero value (`VALUE_SOURCE_UNSPECIFIED`), so it needs no table per enum. An
    unknown number (a newer server) reads as its number."""
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    try:
        name: str = enum.Name(number)
    except ValueError:
        return str(number)
    return name.removeprefix(prefix).lower()


__all__ = ["enum_name"]

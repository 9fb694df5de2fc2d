"""Differences between two values as RFC 6902 JSON Patch, for the history."""

from __future__ import annotations

import jsonpatch

from switchyard.domain.models import JSONValue


def json_diff(old: JSONValue, new: JSONValue) -> list[dict[str, JSONValue]]:
    """The RFC 6902 patch that turns `old` into `new`, as the history records it.

    Two objects or two arrays get a fine-grained patch from jsonpatch (paths such as
    `/limits/0`). Anything else (scalars, no value, or an object turning into an array) is
    one operation on the root: `add` when there was no value, `remove` when there is none
    any more, `replace` otherwise, and `[]` when nothing changed. `true` and `1` differ,
    as they do in JSON. Raises nothing."""
    if isinstance(old, dict | list) and type(old) is type(new):
        ops: list[dict[str, JSONValue]] = jsonpatch.make_patch(old, new).patch
        return ops
    if old == new and type(old) is type(new):
        return []
    if old is None:
        return [{"op": "add", "path": "", "value": new}]
    if new is None:
        return [{"op": "remove", "path": ""}]
    return [{"op": "replace", "path": "", "value": new}]


__all__ = ["json_diff"]

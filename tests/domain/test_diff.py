"""History diffs are RFC 6902 patches that turn the old value into the new one."""

from __future__ import annotations

import json
from typing import Any

import jsonpatch
import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.diff import json_diff
from switchyard.domain.values import normalize

from .strategies import json_values


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        (None, None, []),
        (1, 1, []),
        ("a", "a", []),
        ({"a": [1, 2]}, {"a": [1, 2]}, []),
        (None, 5, [{"op": "add", "path": "", "value": 5}]),
        (None, {"a": 1}, [{"op": "add", "path": "", "value": {"a": 1}}]),
        (5, None, [{"op": "remove", "path": ""}]),
        ([1], None, [{"op": "remove", "path": ""}]),
        (5, 6, [{"op": "replace", "path": "", "value": 6}]),
        (5, "5", [{"op": "replace", "path": "", "value": "5"}]),
        (True, 1, [{"op": "replace", "path": "", "value": 1}]),
        (0, False, [{"op": "replace", "path": "", "value": False}]),
        ("x", [1], [{"op": "replace", "path": "", "value": [1]}]),
        ({"a": 1}, [1], [{"op": "replace", "path": "", "value": [1]}]),
        ({"a": 1}, {"a": 2}, [{"op": "replace", "path": "/a", "value": 2}]),
        ({"a": 1}, {"a": 1, "b": 2}, [{"op": "add", "path": "/b", "value": 2}]),
        ({"a": 1, "b": 2}, {"a": 1}, [{"op": "remove", "path": "/b"}]),
        ({"a": 1}, {"a": True}, [{"op": "replace", "path": "/a", "value": True}]),
        ([1, 2], [1, 2, 3], [{"op": "add", "path": "/2", "value": 3}]),
        ({"a/b": 1}, {"a/b": 2}, [{"op": "replace", "path": "/a~1b", "value": 2}]),
    ],
)
def test_json_diff(old: Any, new: Any, patch: list[dict[str, Any]]) -> None:
    assert json_diff(old, new) == patch


def _same(a: Any, b: Any) -> bool:
    """Equal as stored JSON: `true` is not 1, -0.0 is 0."""
    return bool(
        json.dumps(normalize(a), sort_keys=True) == json.dumps(normalize(b), sort_keys=True)
    )


@given(json_values, json_values)
def test_applying_the_diff_gives_the_new_value(old: Any, new: Any) -> None:
    patch = json_diff(old, new)
    if old is None or new is None:
        # No document to patch from or to: one op on the root says it (none if both absent).
        assert len(patch) == (0 if old is new else 1)
        assert all(op["path"] == "" for op in patch)
    else:
        assert _same(jsonpatch.apply_patch(old, patch), new)


@given(st.integers() | st.text() | st.booleans())
def test_diff_of_a_value_with_itself_is_empty(value: Any) -> None:
    assert json_diff(value, value) == []

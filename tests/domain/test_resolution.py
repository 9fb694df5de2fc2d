"""Which layer answers: overrides along the chain, base, default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.diff import json_diff
from switchyard.domain.environments import ancestry, check_environment
from switchyard.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from switchyard.domain.models import (
    ConfigDefinition,
    ConfigType,
    Environment,
    Override,
    ValueSource,
)
from switchyard.domain.resolution import next_expiry, resolve

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
KEY = ConfigDefinition(
    key="api.timeout", type=ConfigType.NUMBER, category="api", value=30, default_value=10
)
ENVIRONMENTS = [
    Environment("development"),
    Environment("production"),
    Environment("demo", parent="production"),
    Environment("local", parent="development"),
]


def override(environment: str, value: object, priority: int = 100, **fields: object) -> Override:
    return Override(
        key="api.timeout", environment=environment, value=value, priority=priority, **fields
    )  # type: ignore[arg-type]


def test_override_beats_base_and_base_beats_default() -> None:
    assert resolve(KEY, [override("production", 60)], ["production"], NOW).value == 60
    assert (
        resolve(KEY, [override("production", 60)], ["development"], NOW).source is ValueSource.BASE
    )
    assert resolve(KEY, [], [], NOW).value == 30
    no_base = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c", default_value=10)
    assert resolve(no_base, [], [], NOW).source is ValueSource.DEFAULT
    empty = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c")
    assert resolve(empty, [], [], NOW).source is ValueSource.NONE


def test_highest_priority_applying_override_wins() -> None:
    overrides = [
        override("production", 60),
        override("production", 90, priority=200, expires_at=NOW - timedelta(seconds=1)),
        override("production", 70, priority=150, is_active=False),
        override("production", 80, priority=120),
    ]
    assert resolve(KEY, overrides, ["production"], NOW).value == 80


def test_inheritance_names_the_answering_layer() -> None:
    chain = ancestry(ENVIRONMENTS, "demo")
    resolved = resolve(KEY, [override("production", 60)], chain, NOW)
    assert chain == ["demo", "production"]
    assert resolved.source is ValueSource.INHERITED_OVERRIDE
    assert resolved.source_environment == "production"


def test_null_override_falls_through() -> None:
    assert (
        resolve(KEY, [override("production", None)], ["production"], NOW).source is ValueSource.BASE
    )


def test_next_expiry_is_the_earliest_future_one_in_the_chain() -> None:
    overrides = [
        override("production", 1, expires_at=NOW + timedelta(minutes=5)),
        override("production", 2, priority=5, expires_at=NOW + timedelta(minutes=1)),
        override("development", 3, expires_at=NOW + timedelta(seconds=1)),
        override("production", 4, priority=6, expires_at=NOW - timedelta(minutes=1)),
    ]
    assert next_expiry(overrides, ["demo", "production"], NOW) == NOW + timedelta(minutes=1)
    assert next_expiry([], ["production"], NOW) is None


@given(st.lists(st.tuples(st.integers(0, 300), st.integers(-100, 100)), max_size=8))
def test_resolve_never_answers_with_an_expired_override(specs: list[tuple[int, int]]) -> None:
    overrides = [
        override("production", i, priority=priority, expires_at=NOW + timedelta(seconds=offset))
        for i, (priority, offset) in enumerate(specs)
    ]
    resolved = resolve(KEY, overrides, ["production"], NOW)
    if resolved.source is ValueSource.OVERRIDE:
        assert resolved.expires_at is not None and resolved.expires_at > NOW


def test_ancestry_refuses_unknown_and_cyclic() -> None:
    with pytest.raises(NotFound, match="moon"):
        ancestry(ENVIRONMENTS, "moon")
    with pytest.raises(FailedPrecondition, match="cycle"):
        ancestry([Environment("a", parent="b"), Environment("b", parent="a")], "a")


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (Environment("production", parent="demo"), "inherit from itself"),
        (Environment("x", parent="x"), "cannot inherit from itself"),
        (Environment("x", parent="moon"), "unknown environment"),
        (Environment("Bad Name"), "not an environment name"),
    ],
)
def test_check_environment_refuses(candidate: Environment, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check_environment(ENVIRONMENTS, candidate)


def test_check_environment_accepts_a_new_child() -> None:
    check_environment(ENVIRONMENTS, Environment("canary", parent="production"))
    check_environment(ENVIRONMENTS, Environment("demo", parent="development"))


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        (1, 1, []),
        (None, 5, [{"op": "add", "path": "", "value": 5}]),
        (5, None, [{"op": "remove", "path": ""}]),
        (5, "5", [{"op": "replace", "path": "", "value": "5"}]),
        (True, 1, [{"op": "replace", "path": "", "value": 1}]),
        ({"a": 1}, {"a": 2}, [{"op": "replace", "path": "/a", "value": 2}]),
        ({"a": 1}, [1], [{"op": "replace", "path": "", "value": [1]}]),
    ],
)
def test_json_diff(old: object, new: object, patch: list[dict[str, object]]) -> None:
    assert json_diff(old, new) == patch  # type: ignore[arg-type]

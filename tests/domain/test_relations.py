"""depends_on and conflicts_with, judged on effective values in one environment."""

from __future__ import annotations

from typing import Any

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ConfigDefinition, ConfigType, JSONValue, Validation
from switchyard.domain.values import check_relations, is_truthy

DEFINITION = ConfigDefinition(
    key="cache.l2",
    type=ConfigType.BOOLEAN,
    category="cache",
    validation=Validation(depends_on=("cache.enabled", "redis.url"), conflicts_with=("cache.off",)),
)
HEALTHY: dict[str, JSONValue] = {
    "cache.enabled": True,
    "redis.url": "redis://r:6379",
    "cache.off": False,
}


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (0, True),
        (0.0, True),
        (-1, True),
        ("false", True),
        ("x", True),
        ([None], True),
        ({"a": None}, True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def descriptions(value: Any, related: dict[str, JSONValue], missing: tuple[str, ...]) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        check_relations(DEFINITION, value, related, missing, "production")
    assert {v.field for v in caught.value.violations} == {"value"}
    return [v.description for v in caught.value.violations]


def test_satisfied_relations_pass() -> None:
    check_relations(DEFINITION, True, HEALTHY, (), "production")  # raises if refused


@pytest.mark.parametrize("value", [None, False, "", []])
def test_a_falsy_value_relates_to_nothing(value: Any) -> None:
    everything_wrong = {"cache.off": True}
    check_relations(DEFINITION, value, everything_wrong, ("redis.url",), "x")  # raises if refused


def test_unset_dependency() -> None:
    assert descriptions(True, {**HEALTHY, "cache.enabled": False}, ()) == [
        "depends on cache.enabled, which is not set (false) in production; set cache.enabled first"
    ]


def test_dependency_with_no_value() -> None:
    related = {k: v for k, v in HEALTHY.items() if k != "cache.enabled"}
    [description] = descriptions(True, related, ())
    assert description.startswith("depends on cache.enabled, which is not set in production")


def test_missing_dependency() -> None:
    [description] = descriptions(True, HEALTHY, ("redis.url",))
    assert description.startswith("depends on redis.url, which does not exist or is inactive")


def test_conflict() -> None:
    assert descriptions(True, {**HEALTHY, "cache.off": "yes"}, ()) == [
        'conflicts with cache.off, which is set ("yes") in production; unset cache.off first'
    ]


def test_a_missing_conflict_cannot_conflict() -> None:
    related = {**HEALTHY, "cache.off": True}
    check_relations(DEFINITION, True, related, ("cache.off",), "p")  # raises if refused


def test_every_broken_relation_is_reported() -> None:
    found = descriptions(5, {"cache.off": 0}, ("redis.url",))
    assert len(found) == 3
    assert [d.split(",")[0] for d in found] == [
        "depends on cache.enabled",
        "depends on redis.url",
        "conflicts with cache.off",
    ]


def test_base_layer_is_named_when_there_is_no_environment() -> None:
    with pytest.raises(InvalidArgument, match="in the base layer"):
        check_relations(DEFINITION, True, {**HEALTHY, "cache.enabled": None}, (), None)

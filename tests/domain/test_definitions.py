"""A definition is checked as a whole; every violation comes back on its field path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ConfigDefinition, ConfigType, Validation
from switchyard.domain.values import MAX_ALLOWED_VALUES, MAX_VALUE_BYTES, check_definition

BASE = ConfigDefinition(key="api.timeout", type=ConfigType.NUMBER, category="api")


def fields_of(definition: ConfigDefinition) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as caught:
        check_definition(definition)
    return {v.field: v.description for v in caught.value.violations}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"key": ""}, "config.key", "is required"),
        ({"key": "Bad Key"}, "config.key", "is not a key"),
        ({"category": ""}, "config.category", "is required"),
        ({"category": "c" * 51}, "config.category", "at most 50 characters; got 51"),
        ({"subcategory": "s" * 51}, "config.subcategory", "at most 50"),
        ({"display_name": "d" * 256}, "config.display_name", "at most 255"),
        ({"description": "d" * 1001}, "config.description", "at most 1000"),
        ({"cache_ttl_seconds": -1}, "config.cache_ttl_seconds", "between 0 and 86400"),
        ({"cache_ttl_seconds": 86_401}, "config.cache_ttl_seconds", "got 86401"),
        (
            {"validation": Validation(regex_pattern="(")},
            "config.validation.regex_pattern",
            "is not a valid regular expression",
        ),
        (
            {"validation": Validation(regex_pattern="a" * 501)},
            "config.validation.regex_pattern",
            "at most 500",
        ),
        (
            {"validation": Validation(validation_rule="r" * 501)},
            "config.validation.validation_rule",
            "at most 500",
        ),
        (
            {"validation": Validation(min_value=5, max_value=1)},
            "config.validation.min_value",
            "must not exceed max_value (5 > 1)",
        ),
        (
            {"validation": Validation(max_value=float("inf"))},
            "config.validation.max_value",
            "finite",
        ),
        (
            {"validation": Validation(allowed_values=("a",))},
            "config.validation.allowed_values[0]",
            "must be a number",
        ),
        (
            {"validation": Validation(allowed_values=(1, None))},
            "config.validation.allowed_values[1]",
            "must not be null",
        ),
        (
            {"validation": Validation(allowed_values=(float("nan"),))},
            "config.validation.allowed_values[0]",
            "finite",
        ),
        (
            {"validation": Validation(allowed_values=tuple(range(MAX_ALLOWED_VALUES + 1)))},
            "config.validation.allowed_values",
            "at most 1000 values; got 1001",
        ),
        (
            {"validation": Validation(depends_on=("api.timeout",))},
            "config.validation.depends_on[0]",
            "cannot name the key itself",
        ),
        (
            {"validation": Validation(conflicts_with=("ok", "Not OK"))},
            "config.validation.conflicts_with[1]",
            "is not a key",
        ),
        (
            {"validation": Validation(depends_on=("a", "a"))},
            "config.validation.depends_on[1]",
            "listed twice",
        ),
        (
            {"validation": Validation(depends_on=("a",), conflicts_with=("a",))},
            "config.validation.conflicts_with",
            "cannot be both a dependency",
        ),
        ({"default_value": "thirty"}, "config.default_value", "must be a number"),
        ({"value": "thirty"}, "config.value", "must be a number"),
        (
            {"value": 500, "validation": Validation(min_value=1, max_value=300)},
            "config.value",
            "the value must be between 1 and 300; got 500",
        ),
        (
            {"type": ConfigType.STRING, "value": "x" * MAX_VALUE_BYTES},
            "config.value",
            f"at most {MAX_VALUE_BYTES} bytes",
        ),
        ({"is_required": True}, "config.is_required", "needs a base value or a default"),
    ],
)
def test_bad_definitions_name_the_field(changes: dict[str, Any], field: str, message: str) -> None:
    found = fields_of(replace(BASE, **changes))
    assert field in found, found
    assert message in found[field]


def test_every_violation_is_reported_together() -> None:
    definition = replace(
        BASE,
        key="",
        category="",
        cache_ttl_seconds=-5,
        validation=Validation(regex_pattern="(", min_value=3, max_value=1),
    )
    assert set(fields_of(definition)) == {
        "config.key",
        "config.category",
        "config.cache_ttl_seconds",
        "config.validation.regex_pattern",
        "config.validation.min_value",
    }


def test_values_are_checked_alongside_metadata_violations() -> None:
    found = fields_of(replace(BASE, category="", value="x", default_value="y"))
    assert set(found) == {"config.category", "config.value", "config.default_value"}


def test_values_are_not_checked_against_broken_constraints() -> None:
    found = fields_of(replace(BASE, value=2, validation=Validation(min_value=5, max_value=1)))
    assert set(found) == {"config.validation.min_value"}


def test_default_is_checked_against_the_constraints() -> None:
    rules = Validation(allowed_values=(10, 30))
    found = fields_of(replace(BASE, default_value=20, validation=rules))
    assert found["config.default_value"].startswith("must be one of 10, 30")


def test_good_definition_is_returned_normalized() -> None:
    definition = replace(
        BASE,
        value=30.0,
        default_value=10.0,
        is_required=True,
        validation=Validation(min_value=1, max_value=300, allowed_values=(10.0, 30.0)),
    )
    checked = check_definition(definition)
    assert checked.value == 30
    assert type(checked.value) is int
    assert type(checked.default_value) is int
    assert checked.validation.allowed_values == (10, 30)
    assert all(type(v) is int for v in checked.validation.allowed_values)


@pytest.mark.parametrize(
    ("value", "default"),
    [(30, None), (None, 10), (30, 10)],
)
def test_required_key_needs_a_base_value_or_a_default(value: Any, default: Any) -> None:
    checked = check_definition(replace(BASE, is_required=True, value=value, default_value=default))
    assert (checked.value, checked.default_value) == (value, default)


def test_minimal_definition_passes_unchanged() -> None:
    assert check_definition(BASE) == BASE


def test_relations_to_other_valid_keys_pass() -> None:
    rules = Validation(depends_on=("cache.enabled",), conflicts_with=("cache.disabled",))
    assert check_definition(replace(BASE, validation=rules)).validation == rules

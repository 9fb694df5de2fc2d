"""Typed values and constraints: pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ConfigDefinition, ConfigType, Validation
from switchyard.domain.values import (
    MAX_VALUE_BYTES,
    check_definition,
    check_relations,
    check_value,
    decode_value,
    encode_value,
    is_truthy,
    normalize,
)


def key(kind: ConfigType, **fields: Any) -> ConfigDefinition:
    return ConfigDefinition(key="k", type=kind, category="c", **fields)


VALID = [
    (ConfigType.STRING, ""),
    (ConfigType.STRING, "héllo"),
    (ConfigType.NUMBER, 0),
    (ConfigType.NUMBER, -2.5),
    (ConfigType.BOOLEAN, False),
    (ConfigType.JSON, {"a": [1, None, {"b": "c"}]}),
    (ConfigType.JSON, "just a string"),
    (ConfigType.ARRAY, []),
    (ConfigType.ARRAY, [1, "x", {"y": 2}]),
    (ConfigType.DATE, "2026-11-25"),
    (ConfigType.DATE, "2026-11-25T09:30:00+00:00"),
    (ConfigType.URL, "https://api.example.com/v1?x=1"),
    (ConfigType.URL, "grpc://config:50051"),
    (ConfigType.EMAIL, "ops@example.com"),
    (ConfigType.DURATION, "250ms"),
    (ConfigType.DURATION, "1h30m"),
    (ConfigType.DURATION, "PT90S"),
    (ConfigType.DURATION, "P1DT2H"),
    (ConfigType.CRON, "*/5 * * * *"),
    (ConfigType.CRON, "0 3 * * 1-5"),
]

INVALID = [
    (ConfigType.STRING, 5, "must be a string"),
    (ConfigType.NUMBER, "30", "must be a number"),
    (ConfigType.NUMBER, True, "must be a number"),
    (ConfigType.BOOLEAN, "true", "must be true or false"),
    (ConfigType.BOOLEAN, 1, "must be true or false"),
    (ConfigType.ARRAY, {"a": 1}, "must be an array"),
    (ConfigType.ARRAY, "[1, 2", "must be an array"),
    (ConfigType.DATE, "25/11/2026", "ISO 8601"),
    (ConfigType.DATE, "2026-13-01", "ISO 8601"),
    (ConfigType.URL, "example.com", "URL"),
    (ConfigType.URL, "ftp://example.com", "URL"),
    (ConfigType.URL, "https://exa mple.com", "URL"),
    (ConfigType.EMAIL, "ops-at-example", "email"),
    (ConfigType.DURATION, "ninety minutes", "duration"),
    (ConfigType.DURATION, "P", "duration"),
    (ConfigType.DURATION, "10", "duration"),
    (ConfigType.CRON, "every day", "cron"),
    (ConfigType.CRON, "0 0 3 * * *", "cron"),
    (ConfigType.CRON, "61 * * * *", "cron"),
]


@pytest.mark.parametrize(("kind", "value"), VALID)
def test_valid_values_pass(kind: ConfigType, value: Any) -> None:
    assert check_value(key(kind), value) == value


@pytest.mark.parametrize(("kind", "value", "message"), INVALID)
def test_invalid_values_are_refused_on_the_value_field(
    kind: ConfigType, value: Any, message: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_value(key(kind), value)
    assert [v.field for v in caught.value.violations] == ["value"]
    assert message in caught.value.violations[0].description


def test_integral_floats_become_ints_and_nan_is_refused() -> None:
    assert normalize({"a": [30.0, 2.5]}) == {"a": [30, 2.5]}
    assert isinstance(check_value(key(ConfigType.NUMBER), 30.0), int)
    with pytest.raises(InvalidArgument):
        normalize(float("nan"))


def test_required_key_cannot_be_cleared() -> None:
    assert check_value(key(ConfigType.STRING), None) is None
    with pytest.raises(InvalidArgument, match="cannot be cleared"):
        check_value(key(ConfigType.STRING, is_required=True), None)


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        (ConfigType.NUMBER, 1, True),
        (ConfigType.NUMBER, 10, True),
        (ConfigType.NUMBER, 0.5, False),
        (ConfigType.NUMBER, 11, False),
        (ConfigType.STRING, "abc", True),
        (ConfigType.STRING, "", False),
        (ConfigType.STRING, "x" * 11, False),
        (ConfigType.ARRAY, [1], True),
        (ConfigType.ARRAY, [], False),
    ],
)
def test_min_and_max_bound_numbers_lengths_and_item_counts(
    kind: ConfigType, value: Any, ok: bool
) -> None:
    definition = key(kind, validation=Validation(min_value=1, max_value=10))
    if ok:
        assert check_value(definition, value) == value
    else:
        with pytest.raises(InvalidArgument, match="between 1 and 10"):
            check_value(definition, value)


def test_regex_must_match_the_whole_string() -> None:
    definition = key(ConfigType.STRING, validation=Validation(regex_pattern="[a-z]+-[0-9]+"))
    assert check_value(definition, "ab-12") == "ab-12"
    with pytest.raises(InvalidArgument, match="pattern"):
        check_value(definition, "ab-12x")


def test_allowed_values_compare_as_json() -> None:
    definition = key(ConfigType.NUMBER, validation=Validation(allowed_values=(1, 2.0)))
    assert check_value(definition, 2) == 2
    assert check_value(definition, 1.0) == 1
    with pytest.raises(InvalidArgument, match="one of"):
        check_value(definition, 3)


def test_every_violation_is_reported_at_once() -> None:
    definition = key(
        ConfigType.STRING,
        validation=Validation(max_value=3, regex_pattern="[0-9]+", allowed_values=("1", "2")),
    )
    with pytest.raises(InvalidArgument) as caught:
        check_value(definition, "abcdef")
    assert len(caught.value.violations) == 3


def test_size_limit() -> None:
    definition = key(ConfigType.STRING)
    check_value(definition, "x" * (MAX_VALUE_BYTES - 2))
    with pytest.raises(InvalidArgument, match=str(MAX_VALUE_BYTES)):
        check_value(definition, "x" * MAX_VALUE_BYTES)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"key": "Bad Key"}, "config.key"),
        ({"category": ""}, "config.category"),
        ({"validation": Validation(regex_pattern="(")}, "config.validation.regex_pattern"),
        ({"validation": Validation(min_value=5, max_value=1)}, "config.validation.min_value"),
        ({"validation": Validation(allowed_values=("a",))}, "config.validation.allowed_values[0]"),
        ({"validation": Validation(depends_on=("k",))}, "config.validation.depends_on[0]"),
        (
            {"validation": Validation(depends_on=("a",), conflicts_with=("a",))},
            "config.validation.conflicts_with",
        ),
        ({"cache_ttl_seconds": -1}, "config.cache_ttl_seconds"),
        ({"default_value": "thirty"}, "config.default_value"),
        ({"value": "thirty"}, "config.value"),
        ({"is_required": True}, "config.is_required"),
    ],
)
def test_bad_definitions_name_the_field(changes: dict[str, Any], field: str) -> None:
    definition = ConfigDefinition(key="k", type=ConfigType.NUMBER, category="c")
    from dataclasses import replace

    with pytest.raises(InvalidArgument) as caught:
        check_definition(replace(definition, **changes))
    assert field in [v.field for v in caught.value.violations]


def test_good_definition_is_normalized() -> None:
    definition = ConfigDefinition(
        key="api.timeout",
        type=ConfigType.NUMBER,
        category="api",
        value=30.0,
        default_value=10.0,
        is_required=True,
        validation=Validation(min_value=1, max_value=300, allowed_values=(10.0, 30.0)),
    )
    checked = check_definition(definition)
    assert checked.value == 30 and isinstance(checked.value, int)
    assert checked.validation.allowed_values == (10, 30)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),
        ("x", True),
        (True, True),
    ],
)
def test_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_relations() -> None:
    definition = key(
        ConfigType.BOOLEAN, validation=Validation(depends_on=("a", "b"), conflicts_with=("c",))
    )
    check_relations(definition, True, {"a": 1, "b": "yes", "c": False}, (), "prod")
    check_relations(definition, False, {}, ("a", "b", "c"), "prod")  # falsy: nothing to check
    with pytest.raises(InvalidArgument) as caught:
        check_relations(definition, True, {"a": False, "c": True}, ("b",), "prod")
    descriptions = " ".join(v.description for v in caught.value.violations)
    assert "depends on a" in descriptions
    assert "depends on b, which does not exist" in descriptions
    assert "conflicts with c" in descriptions
    assert "in prod" in descriptions


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values)
def test_encode_decode_round_trip(value: Any) -> None:
    assert decode_value(encode_value(value)) == value

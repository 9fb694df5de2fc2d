"""Typed values and their constraints: pure, table-driven."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import ConfigDefinition, ConfigType, Validation
from switchyard.domain.patterns import MAX_TEXT_LENGTH
from switchyard.domain.values import (
    MAX_VALUE_BYTES,
    check_definition,
    check_value,
    check_value_size,
    decode_value,
    encode_value,
    normalize,
)

from .strategies import json_values


def key(kind: ConfigType, **fields: Any) -> ConfigDefinition:
    return ConfigDefinition(key="k", type=kind, category="c", **fields)


def violations(definition: ConfigDefinition, value: Any) -> list[str]:
    """The descriptions check_value gives, all of them on the `value` field."""
    with pytest.raises(InvalidArgument) as caught:
        check_value(definition, value)
    assert {v.field for v in caught.value.violations} == {"value"}
    return [v.description for v in caught.value.violations]


# --- types --------------------------------------------------------------------------------

VALID = [
    (ConfigType.STRING, ""),
    (ConfigType.STRING, "héllo ✓"),
    (ConfigType.NUMBER, 0),
    (ConfigType.NUMBER, -2.5),
    (ConfigType.NUMBER, 10**30),
    (ConfigType.BOOLEAN, False),
    (ConfigType.BOOLEAN, True),
    (ConfigType.JSON, {"a": [1, None, {"b": "c"}]}),
    (ConfigType.JSON, "just a string"),
    (ConfigType.JSON, 3),
    (ConfigType.JSON, False),
    (ConfigType.ARRAY, []),
    (ConfigType.ARRAY, [1, "x", {"y": 2}]),
    (ConfigType.DATE, "2026-11-25"),
    (ConfigType.DATE, "2026-11-25T09:30:00+00:00"),
    (ConfigType.DATE, "2026-11-25T09:30:00Z"),
    (ConfigType.DATE, "2026-11-25T09:30"),
    (ConfigType.URL, "https://api.example.com/v1?x=1"),
    (ConfigType.URL, "http://localhost:8080"),
    (ConfigType.URL, "HTTPS://Example.com"),
    (ConfigType.URL, "grpc://config:50051"),
    (ConfigType.URL, "redis://cache:6379/0"),
    (ConfigType.URL, "postgresql://app@db.internal:5432/orders"),
    (ConfigType.URL, "ftp://example.com"),
    (ConfigType.URL, "http://[::1]:80/"),
    (ConfigType.EMAIL, "ops@example.com"),
    (ConfigType.EMAIL, "first.last+tag@sub.example.org"),
    (ConfigType.DURATION, "250ms"),
    (ConfigType.DURATION, "1h30m"),
    (ConfigType.DURATION, "1.5h"),
    (ConfigType.DURATION, "10us"),
    (ConfigType.DURATION, "10µs"),
    (ConfigType.DURATION, "3ns"),
    (ConfigType.DURATION, "PT90S"),
    (ConfigType.DURATION, "P1DT2H"),
    (ConfigType.DURATION, "P1Y2M3W4DT5H6M7.5S"),
    (ConfigType.DURATION, "P2W"),
    (ConfigType.CRON, "*/5 * * * *"),
    (ConfigType.CRON, "0 3 * * 1-5"),
    (ConfigType.CRON, "0 0 * * MON-FRI"),
    (ConfigType.CRON, "15,45 9-17 1 1,6 *"),
]

INVALID = [
    (ConfigType.STRING, 5, "must be a string"),
    (ConfigType.STRING, ["a"], "must be a string"),
    (ConfigType.NUMBER, "30", 'must be a number; got string "30"'),
    (ConfigType.NUMBER, True, "must be a number; got boolean true"),
    (ConfigType.NUMBER, [1], "must be a number"),
    (ConfigType.BOOLEAN, "true", "must be true or false"),
    (ConfigType.BOOLEAN, 1, "must be true or false; got number 1"),
    (ConfigType.BOOLEAN, 0, "must be true or false"),
    (ConfigType.ARRAY, {"a": 1}, "must be an array; got object"),
    (ConfigType.ARRAY, "[1, 2]", "must be an array"),
    (ConfigType.DATE, "25/11/2026", "ISO 8601"),
    (ConfigType.DATE, "2026-13-01", "ISO 8601"),
    (ConfigType.DATE, "tomorrow", "ISO 8601"),
    (ConfigType.DATE, 20261125, "must be a string (date)"),
    (ConfigType.URL, "example.com", "URL"),
    (ConfigType.URL, "/relative/path", "URL"),
    (ConfigType.URL, "mailto:ops@example.com", "URL"),
    (ConfigType.URL, "https://exa mple.com", "URL"),
    (ConfigType.URL, "https://", "URL"),
    (ConfigType.URL, "1http://example.com", "URL"),
    (ConfigType.URL, "http://[::1", "URL"),
    (ConfigType.URL, "http://host:99999", "URL"),
    (ConfigType.URL, "http://host:port", "URL"),
    (ConfigType.EMAIL, "ops-at-example", "email"),
    (ConfigType.EMAIL, "ops@", "email"),
    (ConfigType.EMAIL, "a b@example.com", "email"),
    (ConfigType.EMAIL, "a" * 300 + "@example.com", "at most 254 characters"),
    (ConfigType.DURATION, "ninety minutes", "duration"),
    (ConfigType.DURATION, "P", "duration"),
    (ConfigType.DURATION, "PT", "duration"),
    (ConfigType.DURATION, "P1DT", "duration"),
    (ConfigType.DURATION, "10", "duration"),
    (ConfigType.DURATION, "-5s", "duration"),
    (ConfigType.DURATION, "1.h", "duration"),
    (ConfigType.DURATION, "5 s", "duration"),
    (ConfigType.DURATION, 90, "must be a string (duration)"),
    (ConfigType.CRON, "every day", "cron"),
    (ConfigType.CRON, "0 0 3 * * *", "five-field"),
    (ConfigType.CRON, "0 0 3 * * * 2026", "five-field"),
    (ConfigType.CRON, "@daily", "five-field"),
    (ConfigType.CRON, "61 * * * *", "cron"),
    (ConfigType.CRON, "* * 32 * *", "cron"),
    (ConfigType.CRON, "*/0 * * * *", "cron"),
]


@pytest.mark.parametrize(("kind", "value"), VALID)
def test_valid_values_pass_unchanged(kind: ConfigType, value: Any) -> None:
    assert check_value(key(kind), value) == value


@pytest.mark.parametrize(("kind", "value", "message"), INVALID)
def test_invalid_values_are_refused_on_the_value_field(
    kind: ConfigType, value: Any, message: str
) -> None:
    [description] = violations(key(kind), value)
    assert message in description


def test_the_field_path_is_the_callers() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_value(key(ConfigType.NUMBER), "x", "values[2].value")
    assert caught.value.violations[0].field == "values[2].value"
    assert caught.value.message.startswith("values[2].value: ")


def test_type_error_skips_the_constraints() -> None:
    definition = key(ConfigType.NUMBER, validation=Validation(min_value=1, regex_pattern="x"))
    assert violations(definition, "30") == ['must be a number; got string "30"']


# --- no value --------------------------------------------------------------------------------


def test_no_value_passes_for_an_optional_key() -> None:
    assert check_value(key(ConfigType.STRING, validation=Validation(min_value=3)), None) is None


def test_required_key_cannot_be_cleared() -> None:
    [description] = violations(key(ConfigType.STRING, is_required=True), None)
    assert description == "is required: config key 'k' cannot be cleared"


# --- normalize and the canonical form --------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (30.0, 30),
        (-0.0, 0),
        (2.5, 2.5),
        (True, True),
        ("30.0", "30.0"),
        (None, None),
        ({"a": [30.0, 2.5, {"b": 1.0}]}, {"a": [30, 2.5, {"b": 1}]}),
        (1e300, 1e300),
        (float(2**53), float(2**53)),
    ],
)
def test_normalize(raw: Any, normal: Any) -> None:
    result = normalize(raw)
    assert result == normal
    assert type(result) is type(normal)


def test_normalize_turns_nested_integral_floats_into_ints() -> None:
    result = normalize({"a": [30.0]})
    assert isinstance(result, dict)
    assert isinstance(result["a"], list)
    assert type(result["a"][0]) is int


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, [1, math.nan], {"a": math.inf}])
def test_normalize_refuses_nan_and_infinity(bad: Any) -> None:
    with pytest.raises(InvalidArgument, match="finite") as caught:
        normalize(bad, "value")
    assert caught.value.violations[0].field == "value"


def test_check_value_normalizes() -> None:
    result = check_value(key(ConfigType.NUMBER), 30.0)
    assert result == 30
    assert type(result) is int
    with pytest.raises(InvalidArgument, match="finite"):
        check_value(key(ConfigType.NUMBER), math.nan)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, None),
        (30, "30"),
        (2.5, "2.5"),
        (True, "true"),
        ("héllo", '"héllo"'),
        ({"a": [1, None]}, '{"a":[1,null]}'),
    ],
)
def test_encode_value_is_compact_and_keeps_unicode(value: Any, text: str | None) -> None:
    assert encode_value(value) == text
    assert decode_value(text) == value


@given(json_values)
def test_encode_decode_round_trip(value: Any) -> None:
    decoded = decode_value(encode_value(value))
    assert decoded == value
    assert encode_value(decoded) == encode_value(value)


@given(json_values)
def test_normalize_is_idempotent_and_keeps_equality(value: Any) -> None:
    once = normalize(value)
    assert once == value
    assert encode_value(normalize(once)) == encode_value(once)


# --- size --------------------------------------------------------------------------------------


def test_size_limit_counts_the_canonical_json_bytes() -> None:
    definition = key(ConfigType.STRING)
    at_limit = "x" * (MAX_VALUE_BYTES - 2)  # two quotes make it exactly MAX_VALUE_BYTES
    assert check_value(definition, at_limit) == at_limit
    [description] = violations(definition, at_limit + "x")
    assert f"is {MAX_VALUE_BYTES + 1} bytes as JSON; at most {MAX_VALUE_BYTES}" in description


def test_size_limit_counts_utf8_bytes_not_characters() -> None:
    two_byte = "é" * (MAX_VALUE_BYTES // 2)
    [description] = violations(key(ConfigType.STRING), two_byte)
    assert str(MAX_VALUE_BYTES) in description


def test_check_value_size_alone() -> None:
    check_value_size(None)
    check_value_size(["x"] * 100)
    with pytest.raises(InvalidArgument, match=str(MAX_VALUE_BYTES)) as caught:
        check_value_size(["x" * 1000] * 100, "config.value")
    assert caught.value.violations[0].field == "config.value"


def test_size_is_reported_with_the_other_violations() -> None:
    definition = key(ConfigType.STRING, validation=Validation(max_value=10, regex_pattern="y+"))
    assert len(violations(definition, "x" * MAX_VALUE_BYTES)) == 3


def test_unpaired_surrogate_is_refused_not_crashed_on() -> None:
    [description] = violations(key(ConfigType.STRING), "\ud800")
    assert "UTF-8" in description


# --- constraints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "ok"),
    [
        (ConfigType.NUMBER, 1, True),
        (ConfigType.NUMBER, 10, True),
        (ConfigType.NUMBER, 10.0, True),
        (ConfigType.NUMBER, 0.5, False),
        (ConfigType.NUMBER, 11, False),
        (ConfigType.NUMBER, -5, False),
        (ConfigType.STRING, "a", True),
        (ConfigType.STRING, "abcdefghij", True),
        (ConfigType.STRING, "", False),
        (ConfigType.STRING, "x" * 11, False),
        (ConfigType.URL, "http://a.b", True),
        (ConfigType.URL, "http://abcdef.io", False),
        (ConfigType.ARRAY, [1], True),
        (ConfigType.ARRAY, list(range(10)), True),
        (ConfigType.ARRAY, [], False),
        (ConfigType.ARRAY, list(range(11)), False),
        (ConfigType.JSON, 5, True),
        (ConfigType.JSON, 50, False),
        (ConfigType.JSON, {"a": 1}, True),  # objects are not bounded
        (ConfigType.BOOLEAN, True, True),  # booleans are not bounded
    ],
)
def test_min_and_max_bound_numbers_lengths_and_item_counts(
    kind: ConfigType, value: Any, ok: bool
) -> None:
    definition = key(kind, validation=Validation(min_value=1, max_value=10))
    if ok:
        assert check_value(definition, value) == value
    else:
        [description] = violations(definition, value)
        assert "must be between 1 and 10; got" in description


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (ConfigType.NUMBER, 500, "the value must be between 1 and 300; got 500"),
        (ConfigType.STRING, "x" * 301, "its length must be between 1 and 300; got 301"),
        (ConfigType.ARRAY, [], "its number of items must be between 1 and 300; got 0"),
    ],
)
def test_bound_messages_say_what_was_measured(kind: ConfigType, value: Any, message: str) -> None:
    definition = key(kind, validation=Validation(min_value=1, max_value=300))
    assert violations(definition, value) == [message]


@pytest.mark.parametrize(
    ("low", "high", "value", "message"),
    [
        (5, None, 4, "the value must be at least 5; got 4"),
        (None, 5, 6, "the value must be at most 5; got 6"),
        (0.5, None, 0.25, "the value must be at least 0.5; got 0.25"),
    ],
)
def test_one_sided_bounds(low: float | None, high: float | None, value: Any, message: str) -> None:
    definition = key(ConfigType.NUMBER, validation=Validation(min_value=low, max_value=high))
    assert violations(definition, value) == [message]


def test_regex_must_match_the_whole_string() -> None:
    definition = key(ConfigType.STRING, validation=Validation(regex_pattern="[a-z]+-[0-9]+"))
    assert check_value(definition, "ab-12") == "ab-12"
    for bad in ("ab-12x", "xab-12 ", "AB-12"):
        [description] = violations(definition, bad)
        assert "must match the pattern '[a-z]+-[0-9]+'" in description


def test_regex_applies_to_typed_strings_and_not_to_numbers_or_booleans() -> None:
    assert violations(
        key(ConfigType.URL, validation=Validation(regex_pattern=r"https://.*")), "http://a.io"
    )
    rules = Validation(regex_pattern="[a-z]+")
    assert check_value(key(ConfigType.NUMBER, validation=rules), 5) == 5
    assert check_value(key(ConfigType.BOOLEAN, validation=rules), True) is True


@pytest.mark.parametrize(
    ("kind", "allowed", "value", "ok"),
    [
        (ConfigType.NUMBER, (1, 2.0), 2, True),
        (ConfigType.NUMBER, (1, 2.0), 1.0, True),
        (ConfigType.NUMBER, (1, 2.0), 3, False),
        (ConfigType.STRING, ("red", "green"), "red", True),
        (ConfigType.STRING, ("red", "green"), "Red", False),
        (ConfigType.JSON, (1,), True, False),  # true is not 1
        (ConfigType.JSON, (True,), 1, False),
        (ConfigType.JSON, ({"a": 1, "b": 2},), {"b": 2, "a": 1}, True),  # member order
        (ConfigType.ARRAY, ([1, 2],), [2, 1], False),  # item order matters
    ],
)
def test_allowed_values_compare_as_json(
    kind: ConfigType, allowed: tuple[Any, ...], value: Any, ok: bool
) -> None:
    definition = key(kind, validation=Validation(allowed_values=allowed))
    if ok:
        assert check_value(definition, value) == normalize(value)
    else:
        [description] = violations(definition, value)
        assert description.startswith("must be one of ")


def test_allowed_values_message_lists_them() -> None:
    definition = key(ConfigType.STRING, validation=Validation(allowed_values=("red", "green")))
    assert violations(definition, "blue") == ['must be one of "red", "green"; got string "blue"']


def test_a_long_allowed_list_is_shortened_in_the_message() -> None:
    definition = key(ConfigType.NUMBER, validation=Validation(allowed_values=tuple(range(50))))
    [description] = violations(definition, 99)
    assert "... (50 in all)" in description
    assert "49" not in description.split(";")[0]


def test_every_violation_is_reported_at_once() -> None:
    definition = key(
        ConfigType.STRING,
        validation=Validation(max_value=3, regex_pattern="[0-9]+", allowed_values=("1", "2")),
    )
    descriptions = violations(definition, "abcdef")
    assert len(descriptions) == 3
    assert "its length must be at most 3; got 6" in descriptions
    assert any("pattern" in d for d in descriptions)
    assert any("one of" in d for d in descriptions)
    with pytest.raises(InvalidArgument) as caught:
        check_value(definition, "abcdef")
    assert caught.value.message.count("value: ") == 3


@given(st.integers(-1000, 1000))
def test_bounded_numbers_pass_exactly_inside_the_bounds(number: int) -> None:
    definition = key(ConfigType.NUMBER, validation=Validation(min_value=-10, max_value=10))
    try:
        check_value(definition, number)
    except InvalidArgument:
        assert not -10 <= number <= 10
    else:
        assert -10 <= number <= 10


@given(json_values)
def test_json_type_accepts_any_value_small_enough(value: Any) -> None:
    assert check_value(key(ConfigType.JSON), value) == value


# --- patterns and crons, as RE2 and croniter run them ------------------------------------


def test_a_pattern_re2_cannot_run_is_refused_with_its_reason() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_definition(key(ConfigType.STRING, validation=Validation(regex_pattern=r"(\w+)-\1")))

    (violation,) = caught.value.violations
    assert violation.field == "config.validation.regex_pattern"
    assert r"invalid escape sequence: \1" in violation.description
    assert "backreferences" in violation.description


def test_a_stored_pattern_re2_cannot_run_refuses_values_until_it_is_changed() -> None:
    """Saved before patterns were RE2's: a value cannot be checked, so it is refused,
    saying what to change; never let through unchecked."""
    definition = key(ConfigType.STRING, validation=Validation(regex_pattern="(?=[A-Z])[A-Z]+"))

    (described,) = violations(definition, "OPS")
    assert "regex_pattern" in described and "(?=" in described


def test_a_pattern_takes_strings_up_to_the_text_limit() -> None:
    definition = key(ConfigType.STRING, validation=Validation(regex_pattern="a*"))

    assert check_value(definition, "a" * MAX_TEXT_LENGTH) == "a" * MAX_TEXT_LENGTH
    (described,) = violations(definition, "a" * (MAX_TEXT_LENGTH + 1))
    assert f"at most {MAX_TEXT_LENGTH}" in described
    unconstrained = key(ConfigType.STRING)
    assert check_value(unconstrained, "a" * (MAX_TEXT_LENGTH + 1))


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4 *"])
def test_a_cron_value_that_never_fires_is_refused(cron: str) -> None:
    (described,) = violations(key(ConfigType.CRON), cron)

    assert "never fires" in described
    assert check_value(key(ConfigType.CRON), "0 0 29 2 *") == "0 0 29 2 *"

"""Names of keys, environments and templates: what the columns hold and nothing else."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.keys import (
    MAX_ENVIRONMENT_LENGTH,
    MAX_KEY_LENGTH,
    MAX_TEMPLATE_NAME_LENGTH,
    check_environment_name,
    check_key,
    check_template_name,
    prefix_range,
)


@pytest.mark.parametrize(
    "key",
    ["api.timeout", "a", "0", "cache.l1.ttl_seconds", "rate-limit.burst", "x" * MAX_KEY_LENGTH],
)
def test_good_keys_pass(key: str) -> None:
    check_key(key)  # raises if refused


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("", "is required"),
        ("x" * (MAX_KEY_LENGTH + 1), f"at most {MAX_KEY_LENGTH} characters; got 101"),
        ("Api.timeout", "is not a key"),
        (".api", "is not a key"),
        ("_api", "is not a key"),
        ("-api", "is not a key"),
        ("api..timeout", "is not a key"),
        ("api.timeout.", "is not a key"),
        ("api timeout", "is not a key"),
        ("api/timeout", "is not a key"),
        ("api.timeout\n", "is not a key"),
        ("api.tîmeout", "is not a key"),
    ],
)
def test_bad_keys_are_refused_on_the_named_field(key: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_key(key, "config.key")
    [violation] = caught.value.violations
    assert violation.field == "config.key"
    assert message in violation.description


@pytest.mark.parametrize("name", ["production", "demo", "qa-2", "eu_west", "x" * 20])
def test_good_environment_names_pass(name: str) -> None:
    check_environment_name(name)  # raises if refused


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is required"),
        ("x" * (MAX_ENVIRONMENT_LENGTH + 1), "at most 20 characters"),
        ("Production", "not an environment name"),
        ("1prod", "not an environment name"),
        ("prod.eu", "not an environment name"),
        ("-prod", "not an environment name"),
    ],
)
def test_bad_environment_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_environment_name(name)
    assert caught.value.violations[0].field == "environment"
    assert message in caught.value.violations[0].description


@pytest.mark.parametrize("name", ["high-traffic", "HighTraffic.v2", "0day", "a" * 100])
def test_good_template_names_pass(name: str) -> None:
    check_template_name(name)  # raises if refused


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is required"),
        ("a" * (MAX_TEMPLATE_NAME_LENGTH + 1), "at most 100 characters"),
        ("-start", "not a template name"),
        ("with space", "not a template name"),
    ],
)
def test_bad_template_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_template_name(name)
    assert caught.value.violations[0].field == "template_name"
    assert message in caught.value.violations[0].description


@pytest.mark.parametrize("check", [check_key, check_environment_name, check_template_name])
def test_message_carries_the_field(check: Callable[[str, str], None]) -> None:
    with pytest.raises(InvalidArgument, match=r"^where: is required$"):
        check("", "where")


@given(st.text(min_size=1, max_size=8), st.text(max_size=12))
def test_a_prefix_range_holds_exactly_the_texts_that_start_with_the_prefix(
    prefix: str, text: str
) -> None:
    low, high = prefix_range(prefix)
    for candidate in (text, prefix + text, text + prefix):
        inside = low <= candidate and (high is None or candidate < high)
        assert inside == candidate.startswith(prefix), (prefix, candidate, high)


def test_a_prefix_range_steps_over_surrogates_and_ends_after_the_last_character() -> None:
    assert prefix_range("api.") == ("api.", "api/")
    assert prefix_range("a\ud7ff") == ("a\ud7ff", "a\ue000")
    assert prefix_range("a\U0010ffff") == ("a\U0010ffff", "b")
    assert prefix_range("\U0010ffff\U0010ffff") == ("\U0010ffff\U0010ffff", None)

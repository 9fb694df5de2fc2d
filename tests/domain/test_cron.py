"""The one reading of the cron expressions callers store: what parses, what fires, and
that stored expressions never make a search fail."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from switchyard.domain.cron import (
    MAX_LENGTH,
    cron_problem,
    fires,
    fires_in_minute,
    last_firing,
    next_firing,
)

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "expression",
    [
        "* * * * *",
        "0 0 29 2 *",  # every leap year
        "0 0 * 2 1#5",  # a fifth Monday in February: up to 40 years apart
        "0 0 L 2 *",
        "0 0 31 2 MON",  # day-of-month or day-of-week: every Monday in February
    ],
)
def test_expressions_that_fire_are_taken(expression: str) -> None:
    assert fires(expression)
    assert cron_problem(expression, "* * * * *") is None
    assert next_firing(expression, T0) is not None


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 11 *"])
def test_expressions_that_never_fire_are_refused_as_such(expression: str) -> None:
    assert not fires(expression)
    assert "never fires" in (cron_problem(expression, "* * * * *") or "")


@pytest.mark.parametrize(
    "expression",
    ["@daily", "0 0 * * * *", "61 * * * *", "", "0 " * 2 + ",".join(["1"] * MAX_LENGTH) + " * *"],
)
def test_malformed_expressions_are_refused_as_such(expression: str) -> None:
    assert "five-field" in (cron_problem(expression, "* * * * *") or "")


@pytest.mark.parametrize("expression", ["0 0 31 2 *", "61 * * * *", "nonsense", "@daily"])
def test_a_stored_expression_that_cannot_run_has_no_firing(expression: str) -> None:
    assert next_firing(expression, T0) is None
    assert last_firing(expression, T0) is None
    assert fires_in_minute(expression, T0) is False


def test_a_firing_exactly_now_is_the_last_one() -> None:
    assert last_firing("0 2 * * *", T0) == T0
    assert next_firing("0 2 * * *", T0) == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert fires_in_minute("0 2 * * *", T0)

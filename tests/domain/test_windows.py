"""Maintenance windows: when each kind is open, what comes next, and what is refused."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from switchyard.domain.errors import InvalidArgument
from switchyard.domain.models import MaintenanceWindow
from switchyard.domain.windows import Occurrence, check_window, next_transition, occurrence_at

T0 = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)  # a Sunday, 02:00 UTC


def once(**fields: object) -> MaintenanceWindow:
    values: dict[str, object] = {
        "name": "reindex",
        "environment": "production",
        "config_values": {"features.maintenance_mode": True},
        "starts_at": T0,
        "ends_at": T0 + timedelta(hours=1),
    }
    values.update(fields)
    return MaintenanceWindow(**values)  # type: ignore[arg-type]


def weekly(**fields: object) -> MaintenanceWindow:
    recurring: dict[str, object] = {
        "starts_at": None,
        "ends_at": None,
        "schedule_cron": "0 2 * * SUN",
        "duration_seconds": 3600,
    }
    return once(**{**recurring, **fields})


def test_a_one_off_window_is_open_from_its_start_until_just_before_its_end() -> None:
    window = once()

    assert occurrence_at(window, T0 - timedelta(seconds=1)) is None
    assert occurrence_at(window, T0) == Occurrence(T0, T0 + timedelta(hours=1))
    assert occurrence_at(window, T0 + timedelta(minutes=59, seconds=59)) is not None
    assert occurrence_at(window, T0 + timedelta(hours=1)) is None


def test_a_recurring_window_opens_each_time_its_cron_fires() -> None:
    window = weekly()
    week = timedelta(days=7)

    assert occurrence_at(window, T0) == Occurrence(T0, T0 + timedelta(hours=1))
    assert occurrence_at(window, T0 + week + timedelta(minutes=30)) == Occurrence(
        T0 + week, T0 + week + timedelta(hours=1)
    )
    assert occurrence_at(window, T0 + timedelta(hours=1)) is None
    assert occurrence_at(window, T0 - timedelta(minutes=1)) is None


def test_the_next_transition_is_the_end_when_open_and_the_next_start_when_closed() -> None:
    assert next_transition(once(), T0 - timedelta(hours=3)) == T0
    assert next_transition(once(), T0 + timedelta(minutes=5)) == T0 + timedelta(hours=1)
    assert next_transition(once(), T0 + timedelta(hours=2)) is None
    assert next_transition(weekly(), T0 + timedelta(hours=2)) == T0 + timedelta(days=7)
    assert next_transition(weekly(), T0 + timedelta(minutes=1)) == T0 + timedelta(hours=1)


def test_an_inactive_window_never_opens() -> None:
    window = replace(weekly(), is_active=False)

    assert occurrence_at(window, T0) is None
    assert next_transition(window, T0) is None


def test_good_windows_pass() -> None:
    check_window(once())
    check_window(weekly())


@pytest.mark.parametrize(
    ("window", "field"),
    [
        (once(name="bad name!"), "window.name"),
        (once(environment="Prod!"), "window.environment"),
        (once(config_values={}), "window.config_values"),
        (once(config_values={"BAD": 1}), "window.config_values.BAD"),
        (once(ends_at=T0), "window.ends_at"),
        (once(ends_at=None), "window.ends_at"),
        (once(schedule_cron="0 2 * * *"), "window.schedule"),
        (once(starts_at=None, ends_at=None), "window.schedule"),
        (weekly(schedule_cron="every sunday"), "window.schedule_cron"),
        (weekly(schedule_cron="0 0 2 * * SUN"), "window.schedule_cron"),
        (weekly(duration_seconds=0), "window.duration_seconds"),
        (weekly(duration_seconds=32 * 86_400), "window.duration_seconds"),
        (once(description="d" * 1001), "window.description"),
    ],
)
def test_each_problem_is_named_on_its_field(window: MaintenanceWindow, field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_window(window)

    assert field in {v.field for v in refused.value.violations}


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_cron_that_never_fires_is_refused(cron: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_window(weekly(schedule_cron=cron))

    (violation,) = caught.value.violations
    assert violation.field == "window.schedule_cron"
    assert "never fires" in violation.description


def test_a_cron_that_fires_rarely_is_taken() -> None:
    leap_day = weekly(schedule_cron="0 0 29 2 *")
    check_window(leap_day)

    assert next_transition(leap_day, T0) == datetime(2028, 2, 29, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["0 0 31 2 *", "every full moon", "61 * * * *", "* * * *"])
def test_a_stored_window_whose_cron_cannot_run_is_closed_with_no_next_transition(
    cron: str,
) -> None:
    """An older version saved it: reading it never fails, and it never opens."""
    window = weekly(schedule_cron=cron)

    assert occurrence_at(window, T0) is None
    assert next_transition(window, T0) is None

"""Maintenance windows: when one is open, and what makes a window valid.

A window is open over [start, end): once, from `starts_at` to `ends_at`, or for
`duration_seconds` after each time its five-field cron expression fires. Times are UTC,
and so is the cron expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import croniter

from switchyard.domain.errors import FieldViolation, Violations
from switchyard.domain.keys import check_environment_name, check_key, check_window_name
from switchyard.domain.models import MaintenanceWindow
from switchyard.domain.values import check_value_size

MAX_WINDOW_KEYS = 1000
MAX_WINDOW_SECONDS = 31 * 86_400
MAX_DESCRIPTION_LENGTH = 1000
_CRON_FIELDS = 5


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One opening of a window."""

    start: datetime
    end: datetime


def occurrence_at(window: MaintenanceWindow, now: datetime) -> Occurrence | None:
    """The opening of `window` that `now` falls in, or None when it is closed at `now`
    (an inactive window is always closed)."""
    if not window.is_active:
        return None
    if window.schedule_cron is not None and window.duration_seconds is not None:
        # croniter steps back from a moment strictly after `now`, so a window that fires
        # exactly at `now` counts as open.
        after = now.astimezone(UTC) + timedelta(seconds=1)
        fired = croniter(window.schedule_cron, after).get_prev(datetime)
        end = fired + timedelta(seconds=window.duration_seconds)
        return Occurrence(fired, end) if fired <= now < end else None
    starts, ends = window.starts_at, window.ends_at
    if starts is not None and ends is not None and starts <= now < ends:
        return Occurrence(starts, ends)
    return None


def next_transition(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """The next moment after `now` at which `window` opens or closes; None when it never
    will again."""
    if not window.is_active:
        return None
    current = occurrence_at(window, now)
    if current is not None:
        return current.end
    if window.schedule_cron is not None:
        nxt: datetime = croniter(window.schedule_cron, now.astimezone(UTC)).get_next(datetime)
        return nxt
    if window.starts_at is not None and window.starts_at > now:
        return window.starts_at
    return None


def check_window(window: MaintenanceWindow) -> None:
    """A window about to be saved: a valid name and environment, 1 to 1000 valid keys
    with values of the allowed size, and exactly one schedule: `starts_at` before
    `ends_at`, or a five-field `schedule_cron` with a `duration_seconds` of at most 31
    days. Raises InvalidArgument listing every violation, on `window.*`."""
    found = Violations()
    found.check(check_window_name, window.name, "window.name")
    found.check(check_environment_name, window.environment, "window.environment")
    if window.description and len(window.description) > MAX_DESCRIPTION_LENGTH:
        found.add("window.description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")
    if not window.config_values:
        found.add("window.config_values", "must set at least one key")
    elif len(window.config_values) > MAX_WINDOW_KEYS:
        found.add("window.config_values", f"may set at most {MAX_WINDOW_KEYS} keys")
    for key, value in window.config_values.items():
        found.check(check_key, key, f"window.config_values.{key}")
        found.check(check_value_size, value, f"window.config_values.{key}")
    found.found.extend(_schedule_violations(window))
    found.raise_any()


def _schedule_violations(window: MaintenanceWindow) -> list[FieldViolation]:
    once = window.starts_at is not None or window.ends_at is not None
    recurring = window.schedule_cron is not None or window.duration_seconds is not None
    if once == recurring:
        return [
            FieldViolation(
                "window.schedule",
                "give either starts_at and ends_at (once) or schedule_cron and "
                "duration_seconds (recurring)",
            )
        ]
    if once:
        if window.starts_at is None or window.ends_at is None:
            return [FieldViolation("window.ends_at", "a one-off window needs both its times")]
        if window.ends_at <= window.starts_at:
            return [FieldViolation("window.ends_at", "must be after starts_at")]
        return []
    problems = []
    cron = window.schedule_cron
    if cron is None or len(cron.split()) != _CRON_FIELDS or not croniter.is_valid(cron):
        problems.append(
            FieldViolation(
                "window.schedule_cron",
                f"must be a five-field cron expression such as '0 2 * * SUN'; got {cron!r}",
            )
        )
    seconds = window.duration_seconds
    if seconds is None or not 1 <= seconds <= MAX_WINDOW_SECONDS:
        problems.append(
            FieldViolation(
                "window.duration_seconds",
                f"must be between 1 and {MAX_WINDOW_SECONDS} (31 days); got {seconds}",
            )
        )
    return problems


__all__ = [
    "MAX_WINDOW_KEYS",
    "MAX_WINDOW_SECONDS",
    "Occurrence",
    "check_window",
    "next_transition",
    "occurrence_at",
]

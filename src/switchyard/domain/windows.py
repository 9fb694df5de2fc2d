"""Maintenance windows: when one is open, and what makes a window valid.

A window is open over [start, end): once, from `starts_at` to `ends_at`, or for
`duration_seconds` after each time its five-field cron expression fires. Times are UTC,
and so is the cron expression (`switchyard.domain.cron`), which must fire.

A window as stored is read fail-safe: one whose expression an older version let through
and that cannot be read or never fires is never open and has no next transition, so
listing it and scheduling the others never fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from switchyard.domain.cron import cron_problem, last_firing, next_firing
from switchyard.domain.errors import FieldViolation, Violations
from switchyard.domain.keys import check_environment_name, check_key, check_window_name
from switchyard.domain.models import MaintenanceWindow
from switchyard.domain.values import check_value_size

MAX_WINDOW_KEYS = 1000
MAX_WINDOW_SECONDS = 31 * 86_400
MAX_DESCRIPTION_LENGTH = 1000


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One opening of a window."""

    start: datetime
    end: datetime


def occurrence_at(window: MaintenanceWindow, now: datetime) -> Occurrence | None:
    """The opening of `window` that `now` falls in, or None when it is closed at `now`
    (an inactive window is always closed, and so is one whose expression cannot be read
    or never fires). Never raises."""
    if not window.is_active:
        return None
    if window.schedule_cron is not None and window.duration_seconds is not None:
        fired = last_firing(window.schedule_cron, now)  # a firing exactly at `now` opens
        if fired is None:
            return None
        end = fired + timedelta(seconds=window.duration_seconds)
        return Occurrence(fired, end) if fired <= now < end else None
    starts, ends = window.starts_at, window.ends_at
    if starts is not None and ends is not None and starts <= now < ends:
        return Occurrence(starts, ends)
    return None


def next_transition(window: MaintenanceWindow, now: datetime) -> datetime | None:
    """The next moment after `now` at which `window` opens or closes; None when it never
    will again (or its expression cannot be read). Never raises."""
    if not window.is_active:
        return None
    current = occurrence_at(window, now)
    if current is not None:
        return current.end
    if window.schedule_cron is not None:
        return next_firing(window.schedule_cron, now)
    if window.starts_at is not None and window.starts_at > now:
        return window.starts_at
    return None


def check_window(window: MaintenanceWindow) -> None:
    """A window about to be saved: a valid name and environment, 1 to 1000 valid keys
    with values of the allowed size, and exactly one schedule: `starts_at` before
    `ends_at`, or a five-field `schedule_cron` that fires, with a `duration_seconds` of
    at most 31 days. Raises InvalidArgument listing every violation, on `window.*`."""
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
    cron_wrong = cron_problem(window.schedule_cron or "", "0 2 * * SUN")
    if cron_wrong is not None:
        problems.append(FieldViolation("window.schedule_cron", cron_wrong))
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

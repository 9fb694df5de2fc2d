"""Cron expressions that callers store and the server runs: a flag's `schedule_cron`, a
maintenance window's `schedule_cron`, and values of config type `cron`. One reading for
all of them, here.

An expression has five fields (minute hour day-of-month month day-of-week), is read in
UTC, as croniter reads it (ranges, steps, lists, names, `L`, `W`, `#`), and must fire:
one that matches no date (`0 0 31 2 *`, `0 0 30 2 *`, `0 0 31 4 *`) would schedule
nothing, so it is refused when saved, as a malformed one is.

Searches for a firing look at most `SEARCH_YEARS` years away. That decides nothing but
their cost: an expression that fires at all fires again within 40 years (the longest gap,
between two February 29ths on the same weekday: `0 0 * 2 1#5`), and a search that finds
nothing costs milliseconds.

Expressions already stored are read fail-safe, whatever an older version let through:
one that does not parse or never fires has no firing (`last_firing` and `next_firing`
answer None, `fires_in_minute` False); none of these functions raises.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter

FIELDS = 5
MAX_LENGTH = 200
"""Characters of an expression: reading one costs time in its length (a 30,000-character
list of minutes takes croniter a third of a second), and real ones are short."""
SEARCH_YEARS = 50
"""How far a search for a firing looks (see the module docstring)."""

_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
"""Where `fires` searches from: any moment would do, a fixed one keeps it pure."""
_UNREADABLE = (ValueError, TypeError, OverflowError)
"""What croniter raises for an expression it cannot read or search (its own errors are
ValueErrors), or for a moment near the calendar's ends."""
NEVER_FIRES = (
    "never fires: no date matches it (February has no 30th or 31st; April, June, "
    "September and November have no 31st)"
)


def parses(expression: str) -> bool:
    """Whether `expression` is five fields, at most MAX_LENGTH characters, that croniter
    reads. croniter also takes 6- and 7-field forms (seconds, years) and `@daily`; the
    consumers of these expressions expect five."""
    if not _shaped(expression):
        return False
    try:
        return bool(croniter.is_valid(expression))
    except _UNREADABLE:
        return False


def _shaped(expression: str) -> bool:
    return len(expression) <= MAX_LENGTH and len(expression.split()) == FIELDS


def fires(expression: str) -> bool:
    """Whether `expression` parses and matches at least one moment."""
    return parses(expression) and next_firing(expression, _REFERENCE) is not None


def cron_problem(expression: str, example: str) -> str | None:
    """Why `expression` cannot be saved as a schedule, or None when it can. `example`
    is a valid expression to show in the message."""
    if not parses(expression):
        return (
            "must be a five-field cron expression (minute hour day-of-month month "
            f"day-of-week, UTC) of at most {MAX_LENGTH} characters, such as {example!r}; "
            f"got {_shown(expression)}"
        )
    if not fires(expression):
        return f"{_shown(expression)} {NEVER_FIRES}"
    return None


def _shown(expression: str) -> str:
    shown = repr(expression)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def next_firing(expression: str, after: datetime) -> datetime | None:
    """The first firing strictly after `after` (UTC); None when there is none within
    SEARCH_YEARS or the expression cannot be read."""
    if not _shaped(expression):
        return None
    try:
        found: datetime = croniter(
            expression, after.astimezone(UTC), max_years_between_matches=SEARCH_YEARS
        ).get_next(datetime)
    except _UNREADABLE:
        return None
    return found


def last_firing(expression: str, at: datetime) -> datetime | None:
    """The latest firing at or before `at` (UTC); None when there is none within
    SEARCH_YEARS or the expression cannot be read."""
    if not _shaped(expression):
        return None
    # croniter steps back from a moment strictly after `at`, so a firing exactly at `at`
    # counts.
    after = at.astimezone(UTC) + timedelta(seconds=1)
    try:
        found: datetime = croniter(
            expression, after, max_years_between_matches=SEARCH_YEARS
        ).get_prev(datetime)
    except _UNREADABLE:
        return None
    return found


def fires_in_minute(expression: str, minute: datetime) -> bool:
    """Whether `expression` matches the minute `minute` falls in (UTC); False for an
    expression that cannot be read."""
    if not _shaped(expression):
        return False
    try:
        return bool(croniter.match(expression, minute.astimezone(UTC)))
    except _UNREADABLE:
        return False


__all__ = [
    "FIELDS",
    "MAX_LENGTH",
    "NEVER_FIRES",
    "SEARCH_YEARS",
    "cron_problem",
    "fires",
    "fires_in_minute",
    "last_firing",
    "next_firing",
    "parses",
]

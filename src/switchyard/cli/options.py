"""Options several commands share, defined once so that they read the same everywhere."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import click
from click.decorators import FC

reason_option = click.option("--reason", help="Why: recorded in the history row.")
ticket_option = click.option("--ticket", help="The ticket: recorded in the history row.")
PIECE_WRITES = 1000
"""The default of --piece-size (transfer.plan.PIECE_WRITES: a test holds them equal)."""
piece_size_option = click.option(
    "--piece-size",
    type=click.IntRange(min=1),
    default=PIECE_WRITES,
    show_default=True,
    metavar="WRITES",
    help="Send at most this many writes per batch: a larger plan goes to the server in "
    "pieces (never splitting a key, or flags or limits that name each other).",
)


def environment_option(text: str, *, required: bool = False) -> Callable[[FC], FC]:
    """`--env ENV`, passed as `environment`; `text` is its help, saying what leaving it
    out means."""
    return click.option("--env", "environment", metavar="ENV", required=required, help=text)


class IsoTime(click.ParamType[datetime]):
    """An ISO 8601 date-time (`2026-05-01T09:00:00Z`, `2026-05-01 09:00+02:00`); one
    without a zone is taken to be UTC, as the server takes it."""

    name = "ISO-TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time (2026-05-01T09:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


__all__ = [
    "PIECE_WRITES",
    "IsoTime",
    "environment_option",
    "piece_size_option",
    "reason_option",
    "ticket_option",
]

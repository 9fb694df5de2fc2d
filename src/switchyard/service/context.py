"""What every write carries besides its payload: who, why, and under which ticket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.models import Principal

Clock = Callable[[], datetime]

MAX_REASON_LENGTH = 1000
MAX_TICKET_LENGTH = 100

SCHEDULER = Principal(
    user_id="00000000-0000-0000-0000-000000000002",
    username="switchyard-scheduler",
    role="system",
    address="scheduler",
)
"""Who the history names for the changes Switchyard makes by itself (seeded by
migration 2): overrides starting and expiring, maintenance windows opening and closing."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class WriteContext:
    """The audit part of a write: recorded in the history row of every change it makes."""

    actor: Principal
    reason: str | None = None
    ticket: str | None = None

    def check(self) -> None:
        """Raises InvalidArgument when `reason` or `ticket` would not fit their columns."""
        violations = []
        if self.reason is not None and len(self.reason) > MAX_REASON_LENGTH:
            violations.append(
                FieldViolation("reason", f"must be at most {MAX_REASON_LENGTH} characters")
            )
        if self.ticket is not None and len(self.ticket) > MAX_TICKET_LENGTH:
            violations.append(
                FieldViolation("ticket", f"must be at most {MAX_TICKET_LENGTH} characters")
            )
        if violations:
            raise InvalidArgument("; ".join(v.description for v in violations), violations)


__all__ = ["SCHEDULER", "Clock", "WriteContext", "utc_now"]

"""What every write carries besides its payload: who, why, and under which ticket."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from switchyard.domain.diff import json_diff
from switchyard.domain.errors import FieldViolation, InvalidArgument
from switchyard.domain.models import (
    Approval,
    Change,
    ChangeKind,
    HistoryAction,
    JSONValue,
    Principal,
)

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
    approval: Approval | None = None
    """Set when the write applies an approved change request: the rows name the
    approver, and the request closes in the same transaction."""
    validate_only: bool = False
    """Check the write all the way to its history rows, then roll it back: how a change
    request is checked when it is proposed (`recorded.record_history` raises
    `Validated`)."""

    def change(
        self,
        *,
        kind: ChangeKind,
        table_name: str,
        record_id: str,
        key: str,
        action: HistoryAction,
        old: JSONValue,
        new: JSONValue,
        environment: str | None = None,
        diff: list[dict[str, JSONValue]] | None = None,
        **fields: Any,
    ) -> Change:
        """The history row of a change this write makes: who, why and under which
        ticket filled in from the write; the diff worked out from `old` to `new` unless
        given (a definition's leaves its bookkeeping fields out)."""
        return Change(
            kind=kind,
            table_name=table_name,
            record_id=record_id,
            key=key,
            environment=environment,
            action=action,
            old_value=old,
            new_value=new,
            value_diff=json_diff(old, new) if diff is None else diff,
            reason=self.reason,
            ticket=self.ticket,
            changed_by=self.actor.user_id,
            changed_by_role=self.actor.role,
            client_address=self.actor.address,
            **fields,
        )

    @property
    def approved_by(self) -> str | None:
        return self.approval.approver.user_id if self.approval is not None else None

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

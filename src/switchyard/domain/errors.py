"""Domain errors: what went wrong, in terms a caller can act on.

No gRPC here. `switchyard.api.errors` maps each class to a status code in one table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One field of a request that is wrong, and why."""

    field: str
    description: str


class SwitchyardError(Exception):
    """Base of every error Switchyard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(SwitchyardError):
    """The named key, environment, template or record does not exist (or is inactive)."""


class AlreadyExists(SwitchyardError):
    """Something with that name exists already."""


class InvalidArgument(SwitchyardError):
    """The request or a value in it is malformed or breaks a constraint."""

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        """One violation on one field, the message being its description."""
        return cls(f"{field}: {description}", [FieldViolation(field, description)])

    @classmethod
    def of(cls, violations: list[FieldViolation]) -> InvalidArgument:
        """Every violation at once, the message naming each field."""
        return cls("; ".join(f"{v.field}: {v.description}" for v in violations), violations)


class Violations:
    """Collects every problem of a request, so that a person fixes it in one go rather
    than one error per round trip."""

    def __init__(self) -> None:
        self.found: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.found.append(FieldViolation(field, description))

    def check(self, check: Callable[..., object], *args: object) -> None:
        """Runs a check that raises InvalidArgument, keeping its violations."""
        try:
            check(*args)
        except InvalidArgument as error:
            self.found.extend(error.violations)

    def raise_any(self) -> None:
        """Raises InvalidArgument with everything found, if anything was."""
        if self.found:
            raise InvalidArgument.of(self.found)


class FailedPrecondition(SwitchyardError):
    """The request is well formed but the current state refuses it (a read-only key, say)."""


class Conflict(SwitchyardError):
    """The caller's `expected_version` is stale: someone else changed the key first."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


class OutOfRange(SwitchyardError):
    """A revision or position outside what is retained (a compacted watch revision, say).
    `oldest_revision` names the oldest one still available, when that is the reason."""

    def __init__(self, message: str, *, oldest_revision: int | None = None) -> None:
        super().__init__(message)
        self.oldest_revision = oldest_revision


class Overrun(SwitchyardError):
    """A watcher fell too far behind the changes and lost its place; it resumes from
    `resume_from` (the last revision it was sent), or, for a stream with no revisions to
    resume from (flagd's), reconnects and reads everything anew."""

    def __init__(self, message: str, *, resume_from: int | None = None) -> None:
        super().__init__(message)
        self.resume_from = resume_from


class PermissionDenied(SwitchyardError):
    """The caller is known but lacks the permission the operation needs."""


class Unauthenticated(SwitchyardError):
    """The caller presented no valid credentials."""


class ResourceExhausted(SwitchyardError):
    """The caller used up an allowance: too many calls, streams or items at once."""

    def __init__(self, message: str, *, retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(SwitchyardError):
    """A backing store (database, Redis) cannot be reached; the request may be retried."""


class Refused(SwitchyardError):
    """Several parts of one request were refused, so none of it was done (a batch of
    writes). It carries the status of the `first` refusal, and a violation naming each."""

    def __init__(self, message: str, first: SwitchyardError, violations: list[FieldViolation]):
        super().__init__(message)
        self.first = first
        self.violations = violations


__all__ = [
    "AlreadyExists",
    "Conflict",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "Overrun",
    "PermissionDenied",
    "Refused",
    "ResourceExhausted",
    "SwitchyardError",
    "Unauthenticated",
    "Unavailable",
    "Violations",
]

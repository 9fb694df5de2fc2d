"""What flags and rate limits share: definitions recorded whole in the history.

A flag or a limit is held in memory on every replica and changed by one transaction that
writes its row and a history row holding the whole definition before and after. So:

- `Recorder` takes the revision, writes the history rows, and once committed applies the
  change here (before the RPC returns) and tells the commit listeners;
- `Applied` makes applying idempotent: a change reaches a replica by its own commit, the
  change bus and the poll, and an older change must never undo a newer one;
- `Tallies` keeps per-key counts (evaluations, triggers) in memory and writes them in
  batches, keeping them when a write fails;
- `definition_change` and `check_version` are the history row and the optimistic check.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import structlog

from switchyard.domain.diff import json_diff
from switchyard.domain.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SwitchyardError,
)
from switchyard.domain.models import (
    Approval,
    Change,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    HistoryAction,
    HistoryEntry,
    JSONValue,
)
from switchyard.service.audit import row_document
from switchyard.service.context import WriteContext
from switchyard.service.ports import Transaction

log = structlog.get_logger(__name__)

CommitListener = Callable[[int, Sequence[HistoryEntry]], None]
CHANGE_REQUEST_TABLE = "pf_change_requests"

Apply = Callable[[int, Sequence[HistoryEntry]], None]
WriteCounts = Callable[[Mapping[str, tuple[int, datetime]]], Awaitable[None]]


class Recorder:
    """Records a transaction's changes and, once it commits, applies them in this process
    and tells the listeners (the follower, which fans them out; the relay)."""

    def __init__(self, apply: Apply) -> None:
        self._apply = apply
        self._listeners: list[CommitListener] = []

    def add_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    async def record(
        self, tx: Transaction, changes: Sequence[Change], ctx: WriteContext | None = None
    ) -> int:
        """Allocates the transaction's revision and writes its history rows (closing the
        change request an approved write applies); returns the revision."""
        revision = await tx.allocate_revision()
        entries = await record_history(
            tx,
            revision,
            changes,
            ctx.approval if ctx else None,
            validate_only=ctx.validate_only if ctx else False,
        )
        tx.after_commit(lambda: self._committed(revision, entries))
        return revision

    def _committed(self, revision: int, entries: Sequence[HistoryEntry]) -> None:
        self._apply(revision, entries)
        for listener in self._listeners:
            listener(revision, entries)


class Validated(Exception):  # not an error: the write checked out
    """Raised where a write that only validates (`WriteContext.validate_only`) would have
    recorded its rows: everything it checks has passed, and its transaction rolls back."""


async def record_history(
    tx: Transaction,
    revision: int,
    changes: Sequence[Change],
    approval: Approval | None,
    *,
    validate_only: bool = False,
) -> list[HistoryEntry]:
    """The one place every write's history rows are written. A write that applies an
    approved change request also closes the request, in the same transaction: the rows
    of the change name the approver, and a row of its own records the approval. Raises
    FailedPrecondition, and so writes nothing, when the request's target changed since
    it was proposed or the request is no longer the content that was approved."""
    if validate_only:
        raise Validated
    entries = await _append(tx, revision, changes, approval)
    tx.recorded.extend(entries)
    return entries


async def _append(
    tx: Transaction, revision: int, changes: Sequence[Change], approval: Approval | None
) -> list[HistoryEntry]:
    # A batch records several writes under one revision: their rows number on.
    first_index = len(tx.recorded)
    if approval is None:
        return await tx.history.append(revision, changes, first_index=first_index)
    request = approval.request
    latest = await tx.change_requests.target_revision(
        request.kind, request.key, request.environment
    )
    if latest > request.base_revision:
        raise FailedPrecondition(
            f"change request {request.id} is stale: {request.kind.value} {request.key!r} "
            f"changed at revision {latest}, after the request was proposed (revision "
            f"{request.base_revision}); propose it again over the current state"
        )
    closed = replace(
        request,
        status=ChangeRequestStatus.APPLIED,
        decided_by=approval.approver.user_id,
        decided_at=approval.at,
        decision_reason=approval.reason,
        approval_ticket=approval.ticket,
        applied_revision=revision,
        version=request.version + 1,
    )
    if not await tx.change_requests.update_request(closed, expected=request):
        raise FailedPrecondition(
            f"change request {request.id} changed or was decided since it was read: read "
            "it again and approve what it says now"
        )
    stamped = [
        replace(change, approved_by=approval.approver.user_id, approval_ticket=approval.ticket)
        for change in changes
    ]
    stamped.append(
        request_change(
            request,
            closed,
            HistoryAction.APPROVE,
            WriteContext(approval.approver, approval.reason, approval.ticket),
        )
    )
    return await tx.history.append(revision, stamped, first_index=first_index)


def request_change(
    before: ChangeRequest | None,
    after: ChangeRequest,
    action: HistoryAction,
    ctx: WriteContext,
) -> Change:
    """The history row of a change request's own change: proposed, amended, approved or
    rejected. Keyed by the request's id, with the whole request before and after (every
    field, as `audit.row_document` records rows)."""
    return ctx.change(
        kind=ChangeKind.CHANGE_REQUEST,
        table_name=CHANGE_REQUEST_TABLE,
        record_id=after.id,
        key=after.id,
        environment=after.environment,
        action=action,
        old=None if before is None else row_document(before),
        new=row_document(after),
        version=after.version,
        rollback_available=False,
    )


class Applied:
    """The revision of the last change applied to each key, above the revision everything
    was loaded at."""

    def __init__(self) -> None:
        self._revisions: dict[str, int] = {}
        self._floor = 0

    def loaded(self, revision: int) -> None:
        self._floor = revision

    def claim(self, key: str, revision: int) -> bool:
        """True, once, for a change newer than any applied to `key`."""
        if revision <= self._revisions.get(key, self._floor):
            return False
        self._revisions[key] = revision
        return True


@dataclass(slots=True)
class _Tally:
    count: int
    last: datetime


class Tallies:
    """Per-key counts since the last write, with the moment of the last one."""

    def __init__(self) -> None:
        self._tallies: dict[str, _Tally] = {}
        self._flusher: asyncio.Task[None] | None = None

    def add(self, key: str, now: datetime) -> None:
        tally = self._tallies.get(key)
        if tally is None:
            self._tallies[key] = _Tally(1, now)
        else:
            tally.count += 1
            tally.last = now

    async def flush(self, write: WriteCounts) -> None:
        """Writes what was counted since the last flush; on failure it is kept for the
        next one (and the error raised)."""
        if not self._tallies:
            return
        tallies, self._tallies = self._tallies, {}
        try:
            await write({key: (tally.count, tally.last) for key, tally in tallies.items()})
        except BaseException:
            for key, tally in tallies.items():
                kept = self._tallies.setdefault(key, _Tally(0, tally.last))
                kept.count += tally.count
            raise

    def start(self, write: WriteCounts, every: float, what: str) -> None:
        """Flushes every `every` seconds in the background until `stop`."""
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._run(write, every, what))

    async def stop(self, write: WriteCounts) -> None:
        """Stops the background flush and writes what is left."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        with contextlib.suppress(SwitchyardError):
            await self.flush(write)

    async def _run(self, write: WriteCounts, every: float, what: str) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.flush(write)
            except SwitchyardError as error:
                log.warning(f"{what} not written; kept for the next flush", error=str(error))


MAX_ROLLBACK_STEPS = 1000


def check_steps(steps: int) -> None:
    if not 1 <= steps <= MAX_ROLLBACK_STEPS:
        raise InvalidArgument.field("steps", f"must be between 1 and {MAX_ROLLBACK_STEPS}")


async def rollback_target(
    tx: Transaction, kind: ChangeKind, noun: str, key: str, steps: int
) -> dict[str, JSONValue]:
    """The definition an object had before its last `steps` changes (since it was last
    created), from the history. Raises NotFound when it has fewer changes, and
    FailedPrecondition when that would go past its creation."""
    rows = await tx.history.object_history(kind, key, offset=steps - 1, limit=1)
    if not rows:
        raise NotFound(f"{noun} {key!r} has fewer than {steps} recorded changes")
    target = rows[0].old_value
    if not isinstance(target, dict):
        raise FailedPrecondition(
            f"rolling {noun} {key!r} back {steps} step(s) would go past its creation; "
            "delete it instead"
        )
    return target


def check_version(noun: str, key: str, version: int | None, expected_version: int) -> None:
    """The optimistic check of a write that names `expected_version` (`version` None: the
    object does not exist). Raises NotFound or Conflict."""
    if version is None:
        raise NotFound(f"{noun} {key!r} not found (expected_version was given)")
    if version != expected_version:
        raise Conflict(
            f"{noun} {key!r} is at version {version}, not {expected_version}: "
            "read it again and retry",
            current_version=version,
        )


@dataclass(frozen=True, slots=True)
class Recorded:
    """One side of a definition change: the history document and the object's identity."""

    document: dict[str, JSONValue]
    key: str
    record_id: str
    version: int


def definition_change(
    ctx: WriteContext,
    *,
    kind: ChangeKind,
    table: str,
    action: HistoryAction,
    before: Recorded | None,
    after: Recorded | None,
    bookkeeping: Sequence[str],
) -> Change:
    """The history row of a change to a whole definition: both documents, and a diff that
    leaves out `bookkeeping` fields (versions, stamps), which change every time."""
    subject = after if after is not None else before
    assert subject is not None

    def definition(side: Recorded | None) -> JSONValue:
        if side is None:
            return None
        return {k: v for k, v in side.document.items() if k not in bookkeeping}

    return ctx.change(
        kind=kind,
        table_name=table,
        record_id=subject.record_id,
        key=subject.key,
        action=action,
        old=None if before is None else before.document,
        new=None if after is None else after.document,
        diff=json_diff(definition(before), definition(after)),
        version=subject.version,
    )


def same_definition(
    before: dict[str, JSONValue], after: dict[str, JSONValue], bookkeeping: Sequence[str]
) -> bool:
    """Whether two documents differ only in `bookkeeping` fields: an unchanged write."""
    return {k: v for k, v in before.items() if k not in bookkeeping} == {
        k: v for k, v in after.items() if k not in bookkeeping
    }


__all__ = [
    "MAX_ROLLBACK_STEPS",
    "Applied",
    "CommitListener",
    "Recorded",
    "Recorder",
    "Tallies",
    "Validated",
    "check_steps",
    "check_version",
    "definition_change",
    "rollback_target",
    "same_definition",
]

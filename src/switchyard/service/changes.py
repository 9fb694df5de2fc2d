"""Four-eyes approval: writes to protected environments wait as change requests until
someone other than their proposer approves them.

A request holds the write exactly as its RPC takes it, a digest of that content, and the
revision of its target's latest change when it was proposed. Approving names the digest
the approver reviewed, so an amendment made meanwhile voids the approval; and the write
is applied in one transaction with the request's closing (`recorded.record_history`),
which refuses a request whose target changed since it was proposed.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from switchyard.domain.errors import FailedPrecondition, InvalidArgument, NotFound
from switchyard.domain.models import (
    Approval,
    ChangeKind,
    ChangeRequest,
    ChangeRequestStatus,
    HistoryAction,
    JSONValue,
    Principal,
)
from switchyard.service.context import Clock, WriteContext, utc_now
from switchyard.service.ports import Store, Transaction
from switchyard.service.recorded import CommitListener, Recorder, request_change

MAX_LISTED = 500


@dataclass(frozen=True, slots=True)
class ProposedWrite:
    """A write as a change request carries it: the RPC, its request as JSON, and the
    object it changes."""

    method: str
    request: dict[str, JSONValue]
    kind: ChangeKind
    key: str
    environment: str | None

    @property
    def digest(self) -> str:
        """SHA-256 of the write's canonical JSON: what an approval approves."""
        canonical = json.dumps(
            {"method": self.method, "request": self.request}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ChangeRequestService:
    def __init__(self, store: Store, *, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock
        self._recorder = Recorder(lambda revision, entries: None)

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._recorder.add_listener(listener)

    async def propose(
        self, write: ProposedWrite, ctx: WriteContext, *, amend: str | None = None
    ) -> tuple[ChangeRequest, int]:
        """Records a new request, or amends the caller's own pending request `amend`
        (a new digest: approvals of the old content no longer apply)."""
        ctx.check()
        now = self._clock()
        async with self._store.transaction() as tx:
            base = await tx.change_requests.target_revision(
                write.kind, write.key, write.environment
            )
            if amend is None:
                request = ChangeRequest(
                    id=str(uuid.uuid4()),
                    status=ChangeRequestStatus.PENDING,
                    kind=write.kind,
                    key=write.key,
                    environment=write.environment,
                    method=write.method,
                    request=write.request,
                    content_digest=write.digest,
                    base_revision=base,
                    proposed_by=ctx.actor.user_id,
                    proposed_at=now,
                    reason=ctx.reason,
                    ticket=ctx.ticket,
                )
                await tx.change_requests.insert_request(request)
                change = request_change(None, request, HistoryAction.PROPOSE, ctx)
                revision = await self._recorder.record(tx, [change])
            else:
                before = await _pending(tx.change_requests.find_request, amend)
                if before.proposed_by != ctx.actor.user_id:
                    raise FailedPrecondition(
                        f"change request {amend} was proposed by someone else: propose your "
                        "own instead of amending theirs"
                    )
                request = replace(
                    before,
                    kind=write.kind,
                    key=write.key,
                    environment=write.environment,
                    method=write.method,
                    request=write.request,
                    content_digest=write.digest,
                    base_revision=base,
                    reason=ctx.reason,
                    ticket=ctx.ticket,
                    version=before.version + 1,
                )
                revision = await self._replace(tx, before, request, HistoryAction.UPDATE, ctx)
        return request, revision

    async def approval(
        self, request_id: str, content_digest: str, ctx: WriteContext
    ) -> tuple[ChangeRequest, Approval]:
        """Checks that the caller may approve this request as they saw it, and returns
        the approval that the write's own transaction will record. Nothing is written
        here: the request closes only if the write commits."""
        ctx.check()
        request = await self.get(request_id)
        _check_pending(request)
        if request.proposed_by == ctx.actor.user_id:
            raise FailedPrecondition(
                f"change request {request_id} is your own: a second person must approve it"
            )
        if not content_digest:
            raise InvalidArgument.field(
                "content_digest", "name the content_digest of the request you reviewed"
            )
        if content_digest != request.content_digest:
            raise FailedPrecondition(
                f"change request {request_id} was amended since you reviewed it "
                f"(its content is now {request.content_digest[:12]}…): review it again"
            )
        return request, Approval(
            request=request,
            approver=ctx.actor,
            at=self._clock(),
            reason=ctx.reason,
            ticket=ctx.ticket,
        )

    async def reject(self, request_id: str, ctx: WriteContext) -> tuple[ChangeRequest, int]:
        ctx.check()
        async with self._store.transaction() as tx:
            before = await _pending(tx.change_requests.find_request, request_id)
            rejected = replace(
                before,
                status=ChangeRequestStatus.REJECTED,
                decided_by=ctx.actor.user_id,
                decided_at=self._clock(),
                decision_reason=ctx.reason,
                version=before.version + 1,
            )
            revision = await self._replace(tx, before, rejected, HistoryAction.REJECT, ctx)
        return rejected, revision

    async def _replace(
        self,
        tx: Transaction,
        before: ChangeRequest,
        after: ChangeRequest,
        action: HistoryAction,
        ctx: WriteContext,
    ) -> int:
        """Writes `after` over `before`, if no one changed the request meanwhile, with its
        history row; returns the revision."""
        if not await tx.change_requests.update_request(after, expected=before):
            raise FailedPrecondition(f"change request {before.id} changed meanwhile; retry")
        return await self._recorder.record(tx, [request_change(before, after, action, ctx)])

    async def get(self, request_id: str) -> ChangeRequest:
        async with self._store.read() as reader:
            found = await reader.change_requests.find_request(request_id)
        if found is None:
            raise NotFound(f"change request {request_id!r} not found")
        return found

    async def list(self, status: ChangeRequestStatus | None, limit: int) -> list[ChangeRequest]:
        if not 0 <= limit <= MAX_LISTED:
            raise InvalidArgument.field("page_size", f"must be between 0 and {MAX_LISTED}")
        async with self._store.read() as reader:
            return await reader.change_requests.list_requests(status, limit or 100)

    async def usernames(self, requests: Iterable[ChangeRequest]) -> dict[str, str]:
        """The usernames of the people `requests` name (who proposed, who decided), by
        user id: the requests themselves hold ids, as history rows do."""
        ids = {r.proposed_by for r in requests} | {r.decided_by for r in requests if r.decided_by}
        async with self._store.read() as reader:
            return await reader.users.usernames(ids)

    async def proposer(self, request: ChangeRequest) -> Principal:
        """Who proposed `request`, as the history rows of the applied change name them."""
        async with self._store.read() as reader:
            user = await reader.users.find_user(request.proposed_by)
        if user is None:
            raise FailedPrecondition(f"the proposer of change request {request.id} is gone")
        return Principal(user_id=user.id, username=user.username, role=user.role)


async def _pending(
    find: Callable[[str], Awaitable[ChangeRequest | None]], request_id: str
) -> ChangeRequest:
    found = await find(request_id)
    if found is None:
        raise NotFound(f"change request {request_id!r} not found")
    _check_pending(found)
    return found


def _check_pending(request: ChangeRequest) -> None:
    if request.status is not ChangeRequestStatus.PENDING:
        raise FailedPrecondition(
            f"change request {request.id} is {request.status.value}, not pending"
        )


__all__ = ["ChangeRequestService", "ProposedWrite"]

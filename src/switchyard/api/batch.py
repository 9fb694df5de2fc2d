"""gRPC servicer for `switchyard.v1.BatchService`: many writes, one transaction.

Each write is a write RPC's own request message (`ProposedWrite`, as change requests
carry them) and runs through that RPC's own handler, so it is validated, guarded and
recorded exactly as if it had been called alone. What the interceptor's gate checks for
a single call, the permission, it checks for each write before any of them runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import grpc
import structlog

from switchyard.api import mapping, masking
from switchyard.api.changes import WRITES, Handler, write_handlers
from switchyard.api.errors import status_code
from switchyard.api.identity import current_principal
from switchyard.api.interceptor import Gate
from switchyard.domain.errors import (
    FieldViolation,
    InvalidArgument,
    Refused,
    SwitchyardError,
)
from switchyard.domain.models import ChangeKind
from switchyard.gen.v1 import batch_pb2 as pb
from switchyard.gen.v1 import batch_pb2_grpc
from switchyard.service.batch import MAX_WRITES, BatchResult, BatchService

log = structlog.get_logger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BatchService"].full_name
METHOD = f"/{SERVICE_NAME}/ApplyWrites"

UPSERT_ENVIRONMENT = "/switchyard.v1.ConfigService/UpsertEnvironment"
_METHODS: Mapping[str, str] = {
    **{field: write.method for field, write in WRITES.items()},
    "upsert_environment": UPSERT_ENVIRONMENT,
}
"""The write RPC of each field of `ProposedWrite`."""

_ONCE_PER_BATCH = frozenset({ChangeKind.FLAG, ChangeKind.RATE_LIMIT})
"""Flags and limits are applied in memory as whole definitions, one per revision: a
batch writes each at most once (merge two writes of one flag into one)."""


class BatchServicer(batch_pb2_grpc.BatchServiceServicer):
    def __init__(
        self,
        batches: BatchService,
        handlers: Mapping[str, Handler],
        gate: Gate,
    ) -> None:
        self._batches = batches
        self._handlers = handlers
        self._gate = gate

    async def ApplyWrites(
        self, request: pb.ApplyWritesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyWritesResponse:
        writes = _checked(request)
        self._authorize(writes, context)
        result = await self._batches.apply(
            [
                functools.partial(self._handlers[_METHODS[field]], message, context)
                for field, message in writes
            ],
            dry_run=request.dry_run,
            expected_revision=(
                request.expected_revision if request.HasField("expected_revision") else None
            ),
        )
        if result.refused and not request.dry_run:
            raise _refusal(result, [field for field, _ in writes])
        if result.applied:
            log.info("batch applied", writes=len(writes), revision=result.revision)
        return _response(result, request.dry_run)

    def _authorize(self, writes: list[tuple[str, Any]], context: grpc.aio.ServicerContext) -> None:
        """Every write's own permission, before any of them runs, checked by the gate as
        a call of its own would be; the first refusal refuses the batch, naming the write."""
        for index, (field, message) in enumerate(writes):
            try:
                self._gate.authorize(_METHODS[field], message, context, within=METHOD)
            except SwitchyardError as error:  # PermissionDenied, or FailedPrecondition
                raise type(error)(f"writes[{index}] ({field}): {error.message}") from error


def _checked(request: pb.ApplyWritesRequest) -> list[tuple[str, Any]]:
    """The writes, with the batch's reason and ticket filled in where a write names
    none. Raises InvalidArgument for an empty or oversized batch, a write naming no
    field, a write asking for its own dry run, and a flag or limit written twice."""
    if not request.writes:
        raise InvalidArgument.field("writes", "name at least one write")
    if len(request.writes) > MAX_WRITES:
        raise InvalidArgument.field(
            "writes", f"at most {MAX_WRITES} writes per batch; split it into several"
        )
    violations: list[FieldViolation] = []
    writes: list[tuple[str, Any]] = []
    seen: dict[tuple[ChangeKind, str], int] = {}
    for index, write in enumerate(request.writes):
        field = write.WhichOneof("write")
        if field is None:
            violations.append(FieldViolation(f"writes[{index}]", "name the write (one field)"))
            continue
        message = getattr(write, field)
        fields = message.DESCRIPTOR.fields_by_name
        if "dry_run" in fields and message.dry_run:
            violations.append(
                FieldViolation(
                    f"writes[{index}].{field}.dry_run",
                    "set dry_run on the batch, not on one of its writes",
                )
            )
        described = WRITES.get(field)
        if described is not None and described.kind in _ONCE_PER_BATCH:
            target = (described.kind, described.key(message))
            if target in seen:
                violations.append(
                    FieldViolation(
                        f"writes[{index}].{field}",
                        f"writes {described.kind.value} {target[1]!r} again (first in "
                        f"writes[{seen[target]}]): merge the two into one write",
                    )
                )
            seen.setdefault(target, index)
        message.reason = message.reason or request.reason
        message.ticket = message.ticket or request.ticket
        writes.append((field, message))
    if violations:
        raise InvalidArgument.of(violations)
    return writes


def _refusal(result: BatchResult, fields: list[str]) -> Refused:
    """The error of a batch that was refused: the status of its first refused write,
    and a violation for every refused write (its own fields, under `writes[i].field`)."""
    violations: list[FieldViolation] = []
    for index, error in result.refused:
        prefix = f"writes[{index}].{fields[index]}"
        own = getattr(error, "violations", None)
        if own:
            violations.extend(FieldViolation(f"{prefix}.{v.field}", v.description) for v in own)
        else:
            violations.append(FieldViolation(prefix, error.message))
    first_index, first = result.refused[0]
    count = len(result.refused)
    more = f" ({count - 1} more refused: see the details)" if count > 1 else ""
    return Refused(
        f"nothing was applied: writes[{first_index}] ({fields[first_index]}) was refused: "
        f"{first.message}{more}",
        first,
        violations,
    )


def _response(result: BatchResult, dry_run: bool) -> pb.ApplyWritesResponse:
    principal = current_principal()
    outcomes = []
    for outcome in result.outcomes:
        shown = pb.WriteOutcome(
            changes=[
                mapping.history_to_proto(masking.history(principal, e, result.sensitive_keys))
                for e in outcome.changes
            ]
        )
        if outcome.refusal is not None:
            shown.refusal.CopyFrom(_refusal_to_proto(outcome.refusal))
        outcomes.append(shown)
    return pb.ApplyWritesResponse(outcomes=outcomes, dry_run=dry_run, revision=result.revision)


def _refusal_to_proto(error: SwitchyardError) -> pb.WriteRefusal:
    return pb.WriteRefusal(
        code=status_code(error).value[0],
        message=error.message,
        fields=[
            pb.FieldProblem(field=v.field, description=v.description)
            for v in getattr(error, "violations", None) or ()
        ],
    )


def register(
    server: grpc.aio.Server,
    batches: BatchService,
    servicers: Mapping[str, Any],
    gate: Gate,
) -> None:
    """`servicers` are the write services' servicers by service name: each write runs
    through its own RPC's handler, after `gate` has checked it."""
    batch_pb2_grpc.add_BatchServiceServicer_to_server(
        BatchServicer(batches, write_handlers(servicers, _METHODS.values()), gate), server
    )


__all__ = ["METHOD", "SERVICE_NAME", "BatchServicer", "register"]

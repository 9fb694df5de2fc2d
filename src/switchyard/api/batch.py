"""gRPC servicer for `switchyard.v1.BatchService`: many writes, one transaction.

Each write is a write RPC's own request message (`ProposedWrite`, as change requests
carry them) and runs through that RPC's own handler, so it is validated, guarded and
recorded exactly as if it had been called alone. What the interceptor's gate checks for
a single call, the permission, it checks for each write before any of them runs.

Every answer fits what a gRPC client accepts by default: the response stays under
RESPONSE_BUDGET (each outcome's effect always, its history rows while they fit), and a
refused batch's trailers under REFUSAL_BUDGET (the first refused writes by name, the
count of the rest). An answer a client cannot read is worse than a short one: the
batch has committed, and a client that saw only an error is tempted to send it again.
The response is built a slice at a time, giving the event loop back between slices, so
that the answer to thousands of writes does not hold up every other call meanwhile.
"""

from __future__ import annotations

import asyncio
import functools
import time
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
from switchyard.domain.models import ChangeKind, HistoryAction
from switchyard.gen.v1 import batch_pb2 as pb
from switchyard.gen.v1 import batch_pb2_grpc
from switchyard.service.batch import MAX_WRITES, BatchResult, BatchService, Outcome

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

RESPONSE_BUDGET = 3 * 1024 * 1024
"""The largest answer, in bytes: under the 4 MiB a gRPC client receives by default,
with room to spare. The essentials of MAX_WRITES outcomes take at most about 1.1 MB
(MESSAGE_CUT bounds each refusal's text), so they always fit."""
MESSAGE_CUT = 200
"""A refusal's message is cut at this many bytes when its details do not fit."""
REFUSAL_BUDGET = 4096
"""The field violations of a refused batch, in bytes: they travel in the trailers,
which a gRPC client takes up to 8 KiB of without complaint (16 KiB at the most)."""
_DESCRIPTION_CUT = 300
_SLICE_SECONDS = 0.005
"""How long the answer is built for before the event loop gets a turn."""

_EFFECTS: Mapping[HistoryAction, pb.WriteEffect.ValueType] = {
    HistoryAction.CREATE: pb.WRITE_EFFECT_CREATE,
    HistoryAction.DELETE: pb.WRITE_EFFECT_DELETE,
}


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
        return await _response(result, request.dry_run)

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
    and a violation for each refused write (its own fields, under `writes[i].field`) as
    far as REFUSAL_BUDGET goes; the message says how many more there are."""
    violations: list[FieldViolation] = []
    named: set[int] = set()
    spent = 0
    for index, error in result.refused:
        prefix = f"writes[{index}].{fields[index]}"
        own = getattr(error, "violations", None) or [FieldViolation("", error.message)]
        for violation in own:
            shown = FieldViolation(
                f"{prefix}.{violation.field}" if violation.field else prefix,
                _cut(violation.description, _DESCRIPTION_CUT),
            )
            spent += _length(shown.field) + _length(shown.description)
            if violations and spent > REFUSAL_BUDGET:
                break
            violations.append(shown)
            named.add(index)
        if spent > REFUSAL_BUDGET:
            break
    first_index, first = result.refused[0]
    count = len(result.refused)
    more = ""
    if count > 1:
        listed = "see the details" if len(named) == count else f"the details name {len(named)}"
        more = f" ({count - 1} more refused: {listed}; a dry run lists every refusal)"
    return Refused(
        f"nothing was applied: writes[{first_index}] ({fields[first_index]}) was refused: "
        f"{_cut(first.message, MESSAGE_CUT)}{more}",
        first,
        violations,
    )


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` bytes of UTF-8, an ellipsis ending what was cut."""
    encoded = text.encode("utf-8", "surrogatepass")
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode("utf-8", "ignore") + "…"


def _length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


async def _response(result: BatchResult, dry_run: bool) -> pb.ApplyWritesResponse:
    """The answer: every outcome's essentials (effect, change count, refusal code and
    message), then, outcome by outcome in order, its history rows and its refusal's
    fields while the answer stays within RESPONSE_BUDGET. Gives the event loop a turn
    every _SLICE_SECONDS."""
    principal = current_principal()
    response = pb.ApplyWritesResponse(dry_run=dry_run, revision=result.revision)
    size = response.ByteSize()
    pause = _Pause()
    for outcome in result.outcomes:
        size += _framed(_essentials(outcome, response.outcomes.add()).ByteSize())
        await pause()
    room = True
    for outcome, shown in zip(result.outcomes, response.outcomes, strict=True):
        if not _has_details(outcome):
            continue
        if room:
            whole = _essentials(outcome, pb.WriteOutcome())
            whole.changes.extend(
                mapping.history_to_proto(masking.history(principal, e, result.sensitive_keys))
                for e in outcome.changes
            )
            if outcome.refusal is not None:
                whole.refusal.CopyFrom(_refusal_to_proto(outcome.refusal))
            grown = _framed(whole.ByteSize()) - _framed(shown.ByteSize())
            room = size + grown <= RESPONSE_BUDGET
            if room:
                shown.CopyFrom(whole)
                size += grown
                await pause()
                continue
        shown.details_left_out = True
        response.details_left_out += 1
    return response


def _essentials(outcome: Outcome, shown: pb.WriteOutcome) -> pb.WriteOutcome:
    """Fills what every outcome carries, however large the answer: its effect, its
    change count, and a refusal's code and (cut) message."""
    shown.change_count = len(outcome.changes)
    if outcome.refusal is not None:
        shown.effect = pb.WRITE_EFFECT_REFUSED
        shown.refusal.code = status_code(outcome.refusal).value[0]
        shown.refusal.message = _cut(outcome.refusal.message, MESSAGE_CUT)
    elif not outcome.changes:
        shown.effect = pb.WRITE_EFFECT_UNCHANGED
    else:
        shown.effect = _EFFECTS.get(outcome.changes[0].action, pb.WRITE_EFFECT_UPDATE)
    return shown


def _has_details(outcome: Outcome) -> bool:
    """Whether the outcome has more to say than its essentials."""
    refusal = outcome.refusal
    return bool(outcome.changes) or (
        refusal is not None
        and (
            bool(getattr(refusal, "violations", None))
            or _cut(refusal.message, MESSAGE_CUT) != refusal.message
        )
    )


def _framed(size: int) -> int:
    """The bytes a message of `size` bytes takes as an element of a repeated field:
    its tag, its length and itself."""
    return 1 + max(1, (size.bit_length() + 6) // 7) + size


class _Pause:
    """Awaited often; gives the event loop a turn once _SLICE_SECONDS have passed since
    the last, so that a long piece of work never holds up the other calls for longer."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def __call__(self) -> None:
        if time.perf_counter() - self._since >= _SLICE_SECONDS:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


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


__all__ = [
    "MESSAGE_CUT",
    "METHOD",
    "REFUSAL_BUDGET",
    "RESPONSE_BUDGET",
    "SERVICE_NAME",
    "BatchServicer",
    "register",
]

"""gRPC servicer for `switchyard.v1.ChangeRequestService`: four-eyes approval.

A change request carries a write RPC's own request message. Approving it calls that
RPC's handler in this process, as the proposer, with the approval attached
(`identity.applying`): the write's transaction records who approved it and closes the
request, or, if anything refuses it, changes nothing and leaves the request pending.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import grpc
from google.protobuf import json_format

from switchyard.api import mapping, masking
from switchyard.api.identity import (
    applying,
    bind,
    current_principal,
    done_applying,
    validating,
    write_context,
)
from switchyard.api.permissions import write_rule
from switchyard.domain.access import Permission, Target, holds, require
from switchyard.domain.errors import FailedPrecondition, InvalidArgument
from switchyard.domain.models import ChangeKind, ChangeRequest, ChangeRequestStatus, Principal
from switchyard.gen.v1 import change_pb2 as pb
from switchyard.gen.v1 import change_pb2_grpc
from switchyard.service.changes import ChangeRequestService, ProposedWrite
from switchyard.service.recorded import Validated

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ChangeRequestService"].full_name

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
SensitiveKeys = Callable[[Iterable[str]], Awaitable[frozenset[str]]]


@dataclass(frozen=True, slots=True)
class _Write:
    method: str
    kind: ChangeKind
    key: Callable[[Any], str]
    environment: Callable[[Any], str]


_CONFIG = "/switchyard.v1.ConfigService/"
_FLAG = "/switchyard.v1.FlagService/"
_LIMIT = "/switchyard.v1.RateLimitService/"

# Each write a change request may carry (the ProposedWrite oneof): its RPC, and the
# object it changes, whose later changes make the request stale.
WRITES: Mapping[str, _Write] = {
    "set_value": _Write(
        _CONFIG + "SetValue", ChangeKind.CONFIG, lambda r: r.key, lambda r: r.environment
    ),
    "delete_override": _Write(
        _CONFIG + "DeleteOverride", ChangeKind.CONFIG, lambda r: r.key, lambda r: r.environment
    ),
    "create_config": _Write(
        _CONFIG + "CreateConfig", ChangeKind.CONFIG, lambda r: r.config.key, lambda r: ""
    ),
    "update_config": _Write(
        _CONFIG + "UpdateConfig", ChangeKind.CONFIG, lambda r: r.config.key, lambda r: ""
    ),
    "delete_config": _Write(
        _CONFIG + "DeleteConfig", ChangeKind.CONFIG, lambda r: r.key, lambda r: ""
    ),
    "apply_template": _Write(
        _CONFIG + "ApplyTemplate",
        ChangeKind.TEMPLATE,
        lambda r: r.template_name,
        lambda r: r.environment,
    ),
    "upsert_template": _Write(
        _CONFIG + "UpsertTemplate", ChangeKind.TEMPLATE, lambda r: r.template.name, lambda r: ""
    ),
    "upsert_maintenance_window": _Write(
        _CONFIG + "UpsertMaintenanceWindow",
        ChangeKind.MAINTENANCE_WINDOW,
        lambda r: r.window.name,
        lambda r: r.window.environment,
    ),
    "delete_maintenance_window": _Write(
        _CONFIG + "DeleteMaintenanceWindow",
        ChangeKind.MAINTENANCE_WINDOW,
        lambda r: r.name,
        lambda r: "",
    ),
    "upsert_flag": _Write(
        _FLAG + "UpsertFlag", ChangeKind.FLAG, lambda r: r.flag.key, lambda r: ""
    ),
    "set_flag_enabled": _Write(
        _FLAG + "SetFlagEnabled", ChangeKind.FLAG, lambda r: r.flag_key, lambda r: ""
    ),
    "delete_flag": _Write(
        _FLAG + "DeleteFlag", ChangeKind.FLAG, lambda r: r.flag_key, lambda r: ""
    ),
    "upsert_rate_limit": _Write(
        _LIMIT + "UpsertRateLimit",
        ChangeKind.RATE_LIMIT,
        lambda r: r.rate_limit.key,
        lambda r: r.rate_limit.environment,
    ),
    "delete_rate_limit": _Write(
        _LIMIT + "DeleteRateLimit", ChangeKind.RATE_LIMIT, lambda r: r.limit_key, lambda r: ""
    ),
}
_FIELD_BY_METHOD = {write.method: field for field, write in WRITES.items()}

_STATUSES = {
    ChangeRequestStatus.PENDING: pb.CHANGE_REQUEST_STATUS_PENDING,
    ChangeRequestStatus.APPLIED: pb.CHANGE_REQUEST_STATUS_APPLIED,
    ChangeRequestStatus.REJECTED: pb.CHANGE_REQUEST_STATUS_REJECTED,
}
_STATUSES_BY_NUMBER = {number: status for status, number in _STATUSES.items()}


class ChangeRequestServicer(change_pb2_grpc.ChangeRequestServiceServicer):
    def __init__(
        self,
        service: ChangeRequestService,
        handlers: Mapping[str, Handler],
        sensitive_keys: SensitiveKeys,
    ) -> None:
        self._service = service
        self._handlers = handlers
        """The write RPCs' own handlers, by method path."""
        self._sensitive_keys = sensitive_keys

    async def _shown(self, requests: Sequence[ChangeRequest]) -> list[pb.ChangeRequest]:
        """The requests as the caller may see them: the values they would write to a
        sensitive or encrypted key masked unless the caller may reveal them."""
        principal = current_principal()
        sensitive = await self._sensitive_keys(
            r.key for r in requests if r.kind is ChangeKind.CONFIG
        )
        names = await self._service.usernames(requests)
        shown = []
        for request in requests:
            message = to_proto(request)
            message.proposed_by_username = names.get(request.proposed_by, "")
            message.decided_by_username = names.get(request.decided_by or "", "")
            if request.key in sensitive and not masking.reveals(
                principal, request.key, request.environment
            ):
                _mask_values(message.write)
            shown.append(message)
        return shown

    async def ProposeChange(
        self, request: pb.ProposeChangeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ProposeChangeResponse:
        field = request.write.WhichOneof("write")
        if field is None:
            raise InvalidArgument.field("write", "name the write to propose (one of its fields)")
        write = WRITES.get(field)
        if write is None:
            raise InvalidArgument.field(
                f"write.{field}", "cannot be proposed: an administrator makes it directly"
            )
        message = getattr(request.write, field)
        principal = current_principal()
        for target in write_rule(write.method).targets(message):  # type: ignore[misc]
            require(principal, Permission.PROPOSE, target)
        await self._check(write.method, message, context)
        proposed = ProposedWrite(
            method=write.method,
            request=json_format.MessageToDict(message, preserving_proto_field_name=True),
            kind=write.kind,
            key=write.key(message),
            environment=write.environment(message) or None,
        )
        stored, revision = await self._service.propose(
            proposed, write_context(request), amend=request.request_id or None
        )
        (shown,) = await self._shown([stored])
        return pb.ProposeChangeResponse(change_request=shown, revision=revision)

    async def _check(self, method: str, message: Any, context: grpc.aio.ServicerContext) -> None:
        """Runs the proposed write through its own handler up to its history rows, then
        rolls it back: a bad value, a stale expected_version or a missing key is refused
        now, with the write's own error, rather than when someone approves it."""
        with validating():
            try:
                await self._handlers[method](message, context)
            except Validated:
                return
        raise FailedPrecondition(
            "the proposed write would change nothing: the target already holds it"
        )

    async def ApproveChange(
        self, request: pb.ApproveChangeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApproveChangeResponse:
        approver = current_principal()
        stored, approval = await self._service.approval(
            request.request_id, request.content_digest, write_context(request)
        )
        require(approver, Permission.APPROVE, Target(stored.environment, stored.key))
        field = _FIELD_BY_METHOD[stored.method]
        message = getattr(pb.ProposedWrite(), field).__class__()
        json_format.ParseDict(stored.request, message)
        # The change's rows carry the proposal's reason and ticket, unless the write
        # named its own; the approval's are on the approval's row and approval_ticket.
        message.reason = message.reason or stored.reason or ""
        message.ticket = message.ticket or stored.ticket or ""
        proposer = await self._service.proposer(stored)
        marked = applying(approval)
        # The write is the proposer's: its rows name them, and the approver beside them.
        bind(replace(proposer, address=approver.address))
        try:
            await self._handlers[stored.method](message, context)
        finally:
            bind(approver)
            done_applying(marked)
        applied = await self._service.get(stored.id)
        (shown,) = await self._shown([applied])
        return pb.ApproveChangeResponse(
            change_request=shown, revision=applied.applied_revision or 0
        )

    async def RejectChange(
        self, request: pb.RejectChangeRequest, context: grpc.aio.ServicerContext
    ) -> pb.RejectChangeResponse:
        stored = await self._service.get(request.request_id)
        principal = current_principal()
        if stored.proposed_by != principal.user_id:  # a proposer may withdraw their own
            require(principal, Permission.APPROVE, Target(stored.environment, stored.key))
        rejected, revision = await self._service.reject(request.request_id, write_context(request))
        (shown,) = await self._shown([rejected])
        return pb.RejectChangeResponse(change_request=shown, revision=revision)

    async def GetChangeRequest(
        self, request: pb.GetChangeRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetChangeRequestResponse:
        stored = await self._service.get(request.request_id)
        require(current_principal(), Permission.READ, Target(stored.environment, stored.key))
        (shown,) = await self._shown([stored])
        return pb.GetChangeRequestResponse(change_request=shown)

    async def ListChangeRequests(
        self, request: pb.ListChangeRequestsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListChangeRequestsResponse:
        status = _STATUSES_BY_NUMBER.get(request.status)
        principal = current_principal()
        found = await self._service.list(status, request.page_size)
        visible = [item for item in found if _may_read(principal, item)]
        return pb.ListChangeRequestsResponse(change_requests=await self._shown(visible))


def _may_read(principal: Principal, request: ChangeRequest) -> bool:
    return holds(principal, Permission.READ, Target(request.environment, request.key))


def _mask_values(write: pb.ProposedWrite) -> None:
    """Masks, in place, the values a proposed write carries."""
    field = write.WhichOneof("write")
    if field == "set_value":
        write.set_value.value.string_value = masking.MASKED
    elif field in ("create_config", "update_config"):
        config = getattr(write, field).config
        for name in ("value", "default_value"):
            if config.HasField(name):
                getattr(config, name).string_value = masking.MASKED


def to_proto(request: ChangeRequest) -> pb.ChangeRequest:
    write = pb.ProposedWrite()
    field = _FIELD_BY_METHOD.get(request.method)
    if field is not None:
        json_format.ParseDict(request.request, getattr(write, field))
    message = pb.ChangeRequest(
        id=request.id,
        status=_STATUSES[request.status],
        write=write,
        kind=mapping.CHANGE_KINDS[request.kind],  # type: ignore[arg-type]  # an int of the enum
        key=request.key,
        environment=request.environment or "",
        content_digest=request.content_digest,
        base_revision=request.base_revision,
        proposed_by=request.proposed_by,
        proposed_at=mapping.to_timestamp(request.proposed_at),
        reason=request.reason or "",
        ticket=request.ticket or "",
        decided_by=request.decided_by or "",
        decision_reason=request.decision_reason or "",
        approval_ticket=request.approval_ticket or "",
        applied_revision=request.applied_revision or 0,
        version=request.version,
    )
    decided_at = mapping.to_timestamp(request.decided_at)
    if decided_at is not None:
        message.decided_at.CopyFrom(decided_at)
    return message


def write_handlers(servicers: Mapping[str, Any], methods: Iterable[str]) -> dict[str, Handler]:
    """The handlers of write `methods` (paths), from the write services' servicers by
    service name."""
    handlers: dict[str, Handler] = {}
    for method in methods:
        service_name, _, name = method.strip("/").partition("/")
        handlers[method] = getattr(servicers[service_name], name)
    return handlers


def register(
    server: grpc.aio.Server,
    service: ChangeRequestService,
    servicers: Mapping[str, Any],
    sensitive_keys: SensitiveKeys,
) -> None:
    """`servicers` are the write services' servicers by service name: approvals call
    their handlers."""
    handlers = write_handlers(servicers, _FIELD_BY_METHOD)
    change_pb2_grpc.add_ChangeRequestServiceServicer_to_server(
        ChangeRequestServicer(service, handlers, sensitive_keys), server
    )


__all__ = [
    "SERVICE_NAME",
    "WRITES",
    "ChangeRequestServicer",
    "Handler",
    "register",
    "to_proto",
    "write_handlers",
]

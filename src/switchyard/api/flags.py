"""FlagService over gRPC: each method checks the request's shape, maps it to the domain,
calls one use case and maps the answer back. Errors are mapped by `api.errors`."""

from __future__ import annotations

import grpc

from switchyard.api import flag_mapping as mapping
from switchyard.api.identity import current_principal, write_context
from switchyard.api.mapping import page_request, page_token
from switchyard.api.pages import fitted_page
from switchyard.domain.access import may_see
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.flags import FlagQuery
from switchyard.gen.v1 import flag_pb2 as pb
from switchyard.gen.v1 import flag_pb2_grpc
from switchyard.service.flags import FlagService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["FlagService"].full_name


def _require_key(key: str) -> None:
    if not key:
        raise InvalidArgument.field("flag_key", "is required")


class FlagServicer(flag_pb2_grpc.FlagServiceServicer):
    def __init__(self, service: FlagService) -> None:
        self._service = service

    async def EvaluateFlag(
        self, request: pb.EvaluateFlagRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateFlagResponse:
        _require_key(request.flag_key)
        evaluation, revision = self._service.evaluate(
            request.flag_key, mapping.context_from_proto(request.context)
        )
        return mapping.evaluation_to_proto(evaluation, revision)

    async def EvaluateFlags(
        self, request: pb.EvaluateFlagsRequest, context: grpc.aio.ServicerContext
    ) -> pb.EvaluateFlagsResponse:
        evaluations, revision = self._service.evaluate_all(
            mapping.context_from_proto(request.context)
        )
        return pb.EvaluateFlagsResponse(
            results=[mapping.evaluation_to_proto(e, revision) for e in evaluations],
            revision=revision,
        )

    async def GetFlag(
        self, request: pb.GetFlagRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFlagResponse:
        _require_key(request.flag_key)
        flag, revision = await self._service.get_flag(request.flag_key)
        return pb.GetFlagResponse(
            flag=mapping.flag_to_proto(flag, stale=self._service.is_stale(flag)),
            revision=revision,
        )

    async def ListFlags(
        self, request: pb.ListFlagsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListFlagsResponse:
        query = FlagQuery(
            category=request.feature_category or None,
            feature_type=request.feature_type or None,
            owner_team=request.owner_team or None,
            deprecated_only=request.deprecated_only,
            include_inactive=request.include_inactive,
        )
        page, revision = await self._service.list_flags(
            query,
            page_request(request.page_size, request.page_token),
            stale_only=request.stale_only,
        )
        principal = current_principal()
        flags, cursor = fitted_page(
            [
                (flag.key, mapping.flag_to_proto(flag, stale=self._service.is_stale(flag)))
                for flag in page.items
                if may_see(principal, None, flag.key)
            ],
            page.next_cursor,
        )
        return pb.ListFlagsResponse(
            flags=flags, next_page_token=page_token(cursor), revision=revision
        )

    async def UpsertFlag(
        self, request: pb.UpsertFlagRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertFlagResponse:
        if not request.HasField("flag"):
            raise InvalidArgument.field("flag", "is required")
        flag, created, revision = await self._service.upsert_flag(
            mapping.flag_from_proto(request.flag),
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.UpsertFlagResponse(
            flag=mapping.flag_to_proto(flag), created=created, revision=revision
        )

    async def SetFlagEnabled(
        self, request: pb.SetFlagEnabledRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetFlagEnabledResponse:
        _require_key(request.flag_key)
        flag, revision = await self._service.set_enabled(
            request.flag_key, request.enabled, write_context(request)
        )
        return pb.SetFlagEnabledResponse(flag=mapping.flag_to_proto(flag), revision=revision)

    async def DeleteFlag(
        self, request: pb.DeleteFlagRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteFlagResponse:
        _require_key(request.flag_key)
        revision = await self._service.delete_flag(
            request.flag_key,
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.DeleteFlagResponse(revision=revision)

    async def RollbackFlag(
        self, request: pb.RollbackFlagRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackFlagResponse:
        _require_key(request.flag_key)
        flag, revision = await self._service.rollback_flag(
            request.flag_key, request.steps, write_context(request)
        )
        return pb.RollbackFlagResponse(flag=mapping.flag_to_proto(flag), revision=revision)

    async def ReportFlagOutcome(
        self, request: pb.ReportFlagOutcomeRequest, context: grpc.aio.ServicerContext
    ) -> pb.ReportFlagOutcomeResponse:
        _require_key(request.flag_key)
        outcome = await self._service.report_outcome(
            request.flag_key, request.successes, request.errors
        )
        return pb.ReportFlagOutcomeResponse(
            auto_disabled=outcome.auto_disabled,
            error_rate=outcome.error_rate,
            revision=outcome.revision,
        )


def register(server: grpc.aio.Server, service: FlagService) -> FlagServicer:
    """Adds the servicer to `server` and returns it (change requests call its writes)."""
    servicer = FlagServicer(service)
    flag_pb2_grpc.add_FlagServiceServicer_to_server(servicer, server)
    return servicer


__all__ = ["SERVICE_NAME", "FlagServicer", "register"]

"""RateLimitService over gRPC: each method checks the request's shape, maps it to the
domain, calls one use case and maps the answer back. Errors are mapped by `api.errors`."""

from __future__ import annotations

import grpc

from switchyard.api import pages
from switchyard.api.identity import current_principal, write_context
from switchyard.api.mapping import (
    default_true,
    page_request,
    page_token,
    to_duration,
    to_timestamp,
)
from switchyard.domain.access import may_see
from switchyard.domain.errors import InvalidArgument
from switchyard.domain.limits import (
    Decision,
    LimitAction,
    RateLimit,
    RateLimitQuery,
    ScopeType,
    Subject,
)
from switchyard.gen.v1 import rate_limit_pb2 as pb
from switchyard.gen.v1 import rate_limit_pb2_grpc
from switchyard.service.limits import RateLimitService

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RateLimitService"].full_name

SCOPES = {
    ScopeType.GLOBAL: pb.SCOPE_TYPE_GLOBAL,
    ScopeType.USER: pb.SCOPE_TYPE_USER,
    ScopeType.ROLE: pb.SCOPE_TYPE_ROLE,
    ScopeType.IP: pb.SCOPE_TYPE_IP,
    ScopeType.API_KEY: pb.SCOPE_TYPE_API_KEY,
    ScopeType.ENDPOINT: pb.SCOPE_TYPE_ENDPOINT,
    ScopeType.SERVICE: pb.SCOPE_TYPE_SERVICE,
}
ACTIONS = {
    LimitAction.BLOCK: pb.LIMIT_ACTION_BLOCK,
    LimitAction.THROTTLE: pb.LIMIT_ACTION_THROTTLE,
    LimitAction.QUEUE: pb.LIMIT_ACTION_QUEUE,
    LimitAction.LOG: pb.LIMIT_ACTION_LOG,
    LimitAction.CAPTCHA: pb.LIMIT_ACTION_CAPTCHA,
}
_SCOPES_BY_NUMBER: dict[int, ScopeType] = {n: s for s, n in SCOPES.items()}
_ACTIONS_BY_NUMBER: dict[int, LimitAction] = {n: a for a, n in ACTIONS.items()}


def _scope(number: int, field: str) -> ScopeType:
    scope = _SCOPES_BY_NUMBER.get(number)
    if scope is None:
        raise InvalidArgument.field(
            field, f"is required: one of {', '.join(s.value for s in ScopeType)}"
        )
    return scope


def _action(number: int) -> LimitAction:
    if number == pb.LIMIT_ACTION_UNSPECIFIED:
        return LimitAction.BLOCK
    action = _ACTIONS_BY_NUMBER.get(number)
    if action is None:
        raise InvalidArgument.field(
            "rate_limit.action_on_limit", f"{number} is not a LimitAction this server knows"
        )
    return action


def limit_from_proto(message: pb.RateLimit) -> RateLimit:
    """The writable fields; optional ones left unset take the database defaults."""
    return RateLimit(
        key=message.key,
        name=message.name,
        description=message.description or None,
        max_requests=message.max_requests,
        time_window_seconds=message.time_window_seconds,
        burst_size=message.burst_size or None,
        queue_size=message.queue_size,
        scope_type=_scope(message.scope_type, "rate_limit.scope_type"),
        scope_pattern=message.scope_pattern or None,
        applies_to=message.applies_to or None,
        http_methods=tuple(method.upper() for method in message.http_methods),
        action_on_limit=_action(message.action_on_limit),
        block_duration_seconds=message.block_duration_seconds
        if message.HasField("block_duration_seconds")
        else 60,
        retry_after_header=default_true(message, "retry_after_header"),
        custom_error_message=message.custom_error_message or None,
        redirect_url=message.redirect_url or None,
        exempt_roles=tuple(message.exempt_roles),
        exempt_users=tuple(message.exempt_users),
        exempt_ips=tuple(message.exempt_ips),
        exempt_api_keys=tuple(message.exempt_api_keys),
        sliding_window=default_true(message, "sliding_window"),
        distributed=default_true(message, "distributed"),
        fail_closed=message.fail_closed,
        inherit_from=message.inherit_from or None,
        is_active=default_true(message, "is_active"),
        priority=message.priority if message.HasField("priority") else 100,
        environment=message.environment or None,
        track_metrics=default_true(message, "track_metrics"),
        alert_threshold_percentage=message.alert_threshold_percentage
        if message.HasField("alert_threshold_percentage")
        else 80,
    )


def limit_to_proto(limit: RateLimit) -> pb.RateLimit:
    return pb.RateLimit(
        key=limit.key,
        name=limit.name,
        description=limit.description or "",
        max_requests=limit.max_requests,
        time_window_seconds=limit.time_window_seconds,
        burst_size=limit.burst_size or 0,
        queue_size=limit.queue_size,
        scope_type=SCOPES[limit.scope_type],
        scope_pattern=limit.scope_pattern or "",
        applies_to=limit.applies_to or "",
        http_methods=limit.http_methods,
        action_on_limit=ACTIONS[limit.action_on_limit],
        block_duration_seconds=limit.block_duration_seconds,
        retry_after_header=limit.retry_after_header,
        custom_error_message=limit.custom_error_message or "",
        redirect_url=limit.redirect_url or "",
        exempt_roles=limit.exempt_roles,
        exempt_users=limit.exempt_users,
        exempt_ips=limit.exempt_ips,
        exempt_api_keys=limit.exempt_api_keys,
        sliding_window=limit.sliding_window,
        distributed=limit.distributed,
        fail_closed=limit.fail_closed,
        inherit_from=limit.inherit_from or "",
        is_active=limit.is_active,
        priority=limit.priority,
        environment=limit.environment or "",
        track_metrics=limit.track_metrics,
        alert_threshold_percentage=limit.alert_threshold_percentage,
        last_triggered=to_timestamp(limit.last_triggered),
        trigger_count=limit.trigger_count,
        version=limit.version,
        created_at=to_timestamp(limit.created_at),
        updated_at=to_timestamp(limit.updated_at),
    )


def subject_from_proto(request: pb.CheckRateLimitRequest) -> Subject:
    return Subject(
        user_id=request.user_id,
        roles=tuple(request.roles),
        ip=request.ip,
        api_key=request.api_key,
        endpoint=request.endpoint,
        method=request.method.upper(),
        service=request.service,
        environment=request.environment,
    )


def decision_to_proto(decision: Decision, revision: int) -> pb.CheckRateLimitResponse:
    return pb.CheckRateLimitResponse(
        allowed=decision.allowed,
        exempt=decision.exempt,
        action=ACTIONS[decision.action] if decision.action else pb.LIMIT_ACTION_UNSPECIFIED,
        limit_key=decision.limit_key,
        limit=decision.limit,
        remaining=decision.remaining,
        reset_after=to_duration(decision.reset_after),
        retry_after=None if decision.retry_after is None else to_duration(decision.retry_after),
        delay=to_duration(decision.delay) if decision.delay else None,
        custom_error_message=decision.custom_error_message,
        redirect_url=decision.redirect_url,
        default_applied=decision.default_applied,
        degraded=decision.degraded,
        revision=revision,
        over_limit=decision.over_limit,
        window_seconds=decision.window_seconds,
    )


def _require_key(key: str) -> None:
    if not key:
        raise InvalidArgument.field("limit_key", "is required")


class RateLimitServicer(rate_limit_pb2_grpc.RateLimitServiceServicer):
    def __init__(self, service: RateLimitService) -> None:
        self._service = service

    async def CheckRateLimit(
        self, request: pb.CheckRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.CheckRateLimitResponse:
        if request.hits < 0:
            raise InvalidArgument.field("hits", "must not be negative (0 means 1)")
        decision, revision = await self._service.check(
            subject_from_proto(request),
            hits=request.hits or 1,
            limit_key=request.limit_key or None,
        )
        return decision_to_proto(decision, revision)

    async def GetRateLimit(
        self, request: pb.GetRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRateLimitResponse:
        _require_key(request.limit_key)
        limit, revision = await self._service.get_limit(request.limit_key)
        return pb.GetRateLimitResponse(rate_limit=limit_to_proto(limit), revision=revision)

    async def ListRateLimits(
        self, request: pb.ListRateLimitsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRateLimitsResponse:
        query = RateLimitQuery(
            scope_type=None
            if request.scope_type == pb.SCOPE_TYPE_UNSPECIFIED
            else _scope(request.scope_type, "scope_type"),
            environment=request.environment or None,
            include_inactive=request.include_inactive,
        )
        page, revision = await self._service.list_limits(
            query, page_request(request.page_size, request.page_token)
        )
        principal = current_principal()
        limits, cursor = pages.fitted_page(
            [
                (limit.key, limit_to_proto(limit))
                for limit in page.items
                if may_see(principal, limit.environment, limit.key)
            ],
            page.next_cursor,
        )
        return pb.ListRateLimitsResponse(
            rate_limits=limits, next_page_token=page_token(cursor), revision=revision
        )

    async def UpsertRateLimit(
        self, request: pb.UpsertRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.UpsertRateLimitResponse:
        if not request.HasField("rate_limit"):
            raise InvalidArgument.field("rate_limit", "is required")
        limit, created, revision = await self._service.upsert_limit(
            limit_from_proto(request.rate_limit),
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.UpsertRateLimitResponse(
            rate_limit=limit_to_proto(limit), created=created, revision=revision
        )

    async def DeleteRateLimit(
        self, request: pb.DeleteRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteRateLimitResponse:
        _require_key(request.limit_key)
        revision = await self._service.delete_limit(
            request.limit_key,
            request.expected_version if request.HasField("expected_version") else None,
            write_context(request),
        )
        return pb.DeleteRateLimitResponse(revision=revision)

    async def RollbackRateLimit(
        self, request: pb.RollbackRateLimitRequest, context: grpc.aio.ServicerContext
    ) -> pb.RollbackRateLimitResponse:
        _require_key(request.limit_key)
        limit, revision = await self._service.rollback_limit(
            request.limit_key, request.steps, write_context(request)
        )
        return pb.RollbackRateLimitResponse(rate_limit=limit_to_proto(limit), revision=revision)


def register(server: grpc.aio.Server, service: RateLimitService) -> RateLimitServicer:
    """Adds the servicer to `server` and returns it (change requests call its writes)."""
    servicer = RateLimitServicer(service)
    rate_limit_pb2_grpc.add_RateLimitServiceServicer_to_server(servicer, server)
    return servicer


__all__ = [
    "ACTIONS",
    "SCOPES",
    "SERVICE_NAME",
    "RateLimitServicer",
    "decision_to_proto",
    "limit_from_proto",
    "limit_to_proto",
    "register",
    "subject_from_proto",
]

"""The one place where errors become gRPC statuses.

Domain errors map by class through `_CODES`; field violations travel as
`google.rpc.BadRequest`, a stale version as `google.rpc.ErrorInfo`, an unavailable store
as `google.rpc.RetryInfo`. Anything unexpected becomes INTERNAL with a generic message and
its traceback in the log, so internals never leak to callers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchyard.domain.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    Overrun,
    PermissionDenied,
    SwitchyardError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)

log = structlog.get_logger(__name__)

ERROR_DOMAIN = "switchyard.v1"

_CODES: dict[type[SwitchyardError], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Conflict: grpc.StatusCode.ABORTED,
    OutOfRange: grpc.StatusCode.OUT_OF_RANGE,
    Overrun: grpc.StatusCode.ABORTED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}


def status_code(error: SwitchyardError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return grpc.StatusCode.UNKNOWN


def to_status(error: SwitchyardError) -> grpc.Status:
    """The rich status for a domain error, details packed as google.rpc messages."""
    code = status_code(error)
    details = []
    if isinstance(error, InvalidArgument) and error.violations:
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    elif isinstance(error, Conflict):
        metadata = {}
        if error.current_version is not None:
            metadata["current_version"] = str(error.current_version)
        details.append(
            error_details_pb2.ErrorInfo(
                reason="VERSION_MISMATCH", domain=ERROR_DOMAIN, metadata=metadata
            )
        )
    elif isinstance(error, Overrun):
        details.append(
            error_details_pb2.ErrorInfo(
                reason="SLOW_CONSUMER",
                domain=ERROR_DOMAIN,
                metadata={"resume_from_revision": str(error.resume_from)},
            )
        )
    elif isinstance(error, OutOfRange) and error.oldest_revision is not None:
        details.append(
            error_details_pb2.ErrorInfo(
                reason="COMPACTED",
                domain=ERROR_DOMAIN,
                metadata={"oldest_revision": str(error.oldest_revision)},
            )
        )
    elif isinstance(error, Unavailable):
        details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1)))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message=error.message, details=packed)
    )


_Behavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _guard_unary(behavior: _Behavior, method: str) -> _Behavior:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except SwitchyardError as error:
            await context.abort_with_status(to_status(error))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("unhandled error", method=method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("unreachable: abort raises")

    return guarded


def _guard_stream(behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
    async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            async for response in behavior(request, context):
                yield response
        except SwitchyardError as error:
            await context.abort_with_status(to_status(error))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            # Let cancellation propagate out of a streaming handler (grpc issue 43360).
            raise
        except Exception:
            log.exception("unhandled error", method=method)
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return guarded


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps what Switchyard's own handlers raise to statuses. Wrapped handlers are built
    once per method, so the per-call cost is one extra coroutine frame."""

    def __init__(self) -> None:
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = details.method
        if method in self._wrapped:
            return self._wrapped[method]
        handler = await continuation(details)
        wrapped = handler
        if handler is not None and method.startswith("/switchyard."):
            if handler.unary_unary is not None:
                wrapped = grpc.unary_unary_rpc_method_handler(
                    _guard_unary(handler.unary_unary, method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
            elif handler.unary_stream is not None:
                wrapped = grpc.unary_stream_rpc_method_handler(
                    _guard_stream(handler.unary_stream, method),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        self._wrapped[method] = wrapped
        return wrapped


__all__ = ["ErrorInterceptor", "status_code", "to_status"]

"""The one server interceptor. For every method Switchyard answers (its own services, the
flagd protocols and Envoy's rate-limit protocol) it binds the caller's identity
(`api.identity`) and turns what the handler raises into a gRPC status (`api.errors`): a
domain error into its code and details, cancellation passed through, anything else into
INTERNAL with the traceback in the log.

Handlers are wrapped once per method and kept, so a call costs one extra frame. Health
and reflection are left as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import structlog

from switchyard.api.errors import to_status
from switchyard.api.identity import Authenticator, bind, local_operator
from switchyard.domain.errors import SwitchyardError

log = structlog.get_logger(__name__)

_Unary = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
_Stream = Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]

_INTERNAL = "internal error; see the server log"
WRAPPED_PREFIXES = ("/switchyard.", "/flagd.", "/envoy.service.ratelimit.")
"""The services Switchyard answers itself: its own, the flagd protocols and Envoy's
rate-limit protocol."""


def _unary(behavior: _Unary, method: str, authenticate: Authenticator) -> _Unary:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            bind(authenticate, context)
            return await behavior(request, context)
        except SwitchyardError as error:
            await context.abort_with_status(to_status(error))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            raise
        except Exception:
            log.exception("unhandled error", method=method)
            await context.abort(grpc.StatusCode.INTERNAL, _INTERNAL)
        raise AssertionError("unreachable: abort raises")

    return call


def _stream(behavior: _Stream, method: str, authenticate: Authenticator) -> _Stream:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            bind(authenticate, context)
            async for response in behavior(request, context):
                yield response
        except SwitchyardError as error:
            await context.abort_with_status(to_status(error))
        except (asyncio.CancelledError, grpc.aio.AbortError):
            # Let cancellation propagate out of a streaming handler (grpc issue 43360).
            raise
        except Exception:
            log.exception("unhandled error", method=method)
            await context.abort(grpc.StatusCode.INTERNAL, _INTERNAL)

    return call


class SwitchyardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authenticator: Authenticator = local_operator) -> None:
        self._authenticate = authenticator
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
        if handler is not None and method.startswith(WRAPPED_PREFIXES):
            if handler.unary_unary is not None:
                wrapped = grpc.unary_unary_rpc_method_handler(
                    _unary(handler.unary_unary, method, self._authenticate),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
            elif handler.unary_stream is not None:
                wrapped = grpc.unary_stream_rpc_method_handler(
                    _stream(handler.unary_stream, method, self._authenticate),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        self._wrapped[method] = wrapped
        return wrapped


__all__ = ["SwitchyardInterceptor"]

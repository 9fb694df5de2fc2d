"""Who is calling: the single seam where authentication plugs in.

`IdentityInterceptor` asks an `Authenticator` for the caller's `Principal` once per call
and makes it available to servicers through `current_principal()`. Until authentication
lands, the embedded default answers with the local operator for every call, recording
the caller's network address.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc

from switchyard.domain.models import Principal

LOCAL_OPERATOR = Principal(
    user_id="00000000-0000-0000-0000-000000000001", username="local-operator", role="site_admin"
)

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("switchyard_principal")


class Authenticator(Protocol):
    """Turns a call's metadata and peer into a Principal (or raises Unauthenticated)."""

    def __call__(self, metadata: Sequence[tuple[str, str | bytes]], peer: str) -> Principal: ...


def local_operator(metadata: Sequence[tuple[str, str | bytes]], peer: str) -> Principal:
    """The embedded default: every caller acts as the local operator."""
    return Principal(
        user_id=LOCAL_OPERATOR.user_id,
        username=LOCAL_OPERATOR.username,
        role=LOCAL_OPERATOR.role,
        address=peer,
    )


def current_principal() -> Principal:
    """The caller of the RPC being served. Raises LookupError outside an intercepted call."""
    return _principal.get()


class IdentityInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, authenticator: Authenticator = local_operator) -> None:
        self._authenticate = authenticator
        self._wrapped: dict[str, grpc.RpcMethodHandler | None] = {}

    # grpc.aio runs handlers that are not coroutine (or async generator) functions in a
    # thread pool, so the wrappers must be async themselves.
    def _bind_unary(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
        authenticate = self._authenticate

        async def bound(request: Any, context: grpc.aio.ServicerContext) -> Any:
            _principal.set(authenticate(context.invocation_metadata() or (), context.peer()))
            return await behavior(request, context)

        return bound

    def _bind_stream(
        self, behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]
    ) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
        authenticate = self._authenticate

        async def bound(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _principal.set(authenticate(context.invocation_metadata() or (), context.peer()))
            async for response in behavior(request, context):
                yield response

        return bound

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
                    self._bind_unary(handler.unary_unary),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
            elif handler.unary_stream is not None:
                wrapped = grpc.unary_stream_rpc_method_handler(
                    self._bind_stream(handler.unary_stream),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        self._wrapped[method] = wrapped
        return wrapped


__all__ = [
    "LOCAL_OPERATOR",
    "Authenticator",
    "IdentityInterceptor",
    "current_principal",
    "local_operator",
]

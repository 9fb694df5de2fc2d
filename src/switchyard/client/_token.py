"""A bearer token on every call a channel makes: `authorization: Bearer <token>`.

Client interceptors rather than `grpc.access_token_call_credentials`, because grpc
sends call credentials over TLS channels only, and a token must reach a plaintext
development server on loopback too. grpc.aio files an interceptor under the first of
the four kinds it is an instance of, so each kind of call (unary or streaming, either
way) gets an interceptor object of its own: one object for all four would be applied
to unary calls only, and WatchConfig streams would go out without the token.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import Any

import grpc

AUTHORIZATION = "authorization"


def token_interceptors(token: str) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors that send `token` as a bearer token with every call of every kind.
    Raises ValueError for an empty token or one with whitespace around or inside it
    (an unset variable or a pasted newline, which grpc would refuse or the server would
    not recognise)."""
    if not token or token.split() != [token]:
        raise ValueError("the token must be non-empty, with no spaces or line breaks")
    header = f"Bearer {token}"
    return [
        _UnaryUnary(header),
        _UnaryStream(header),
        _StreamUnary(header),
        _StreamStream(header),
    ]


class _Bearer:
    def __init__(self, header: str) -> None:
        self._header = header

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        """`details` with the token added; a call that brings its own authorization
        metadata keeps it (acting for someone else for one call, say)."""
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if AUTHORIZATION not in metadata:
            metadata.add(AUTHORIZATION, self._header)
        return details._replace(metadata=metadata)


# grpc ships no type information, so its interceptor bases are Any to mypy.
class _UnaryUnary(_Bearer, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Bearer, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_Bearer, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        details: grpc.aio.ClientCallDetails,
        requests: AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_Bearer, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(
        self,
        continuation: Callable[..., Any],
        details: grpc.aio.ClientCallDetails,
        requests: AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._details(details), requests)


__all__ = ["AUTHORIZATION", "token_interceptors"]

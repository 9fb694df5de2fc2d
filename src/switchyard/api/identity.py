"""Who is calling: the single seam where authentication plugs in.

The server interceptor (`api.interceptor`) asks an `Authenticator` for the caller's
`Principal` once per call and makes it available to servicers through
`current_principal()`. Until authentication
lands, the embedded default answers with the local operator for every call, recording
the caller's network address.
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from typing import Protocol

import grpc

from switchyard.domain.models import Principal
from switchyard.service.context import WriteContext

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


def bind(authenticator: Authenticator, context: grpc.aio.ServicerContext) -> None:
    """Makes the caller of the call being served known to `current_principal()`."""
    _principal.set(authenticator(context.invocation_metadata() or (), context.peer()))


class WriteRequest(Protocol):
    """Every write request of the API carries these (the design test checks it)."""

    reason: str
    ticket: str


def write_context(request: WriteRequest) -> WriteContext:
    """The audit part of a write: the caller, and the request's reason and ticket."""
    return WriteContext(
        actor=current_principal(), reason=request.reason or None, ticket=request.ticket or None
    )


__all__ = [
    "LOCAL_OPERATOR",
    "Authenticator",
    "WriteRequest",
    "bind",
    "current_principal",
    "local_operator",
    "write_context",
]

"""Who is calling: the single seam where authentication plugs in.

The server interceptor (`api.interceptor`) asks an `Authenticator` for the caller's
`Principal` once per call and makes it available to servicers through
`current_principal()`. Without authentication (`local_operator`, the embedded default,
which only listens on loopback unless told otherwise) every caller acts as the local
operator. With it (`CredentialAuthenticator`) a caller presents a bearer token or a
client certificate, or is refused with UNAUTHENTICATED.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hmac
from collections.abc import Iterator
from typing import Protocol

import grpc

from switchyard.api.tls import client_certificate_name
from switchyard.domain.errors import Unauthenticated
from switchyard.domain.models import Approval, Principal
from switchyard.service.access import AccessService
from switchyard.service.context import WriteContext

LOCAL_OPERATOR = Principal(
    user_id="00000000-0000-0000-0000-000000000001", username="local-operator", role="site_admin"
)

_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("switchyard_principal")
_approval: contextvars.ContextVar[Approval | None] = contextvars.ContextVar(
    "switchyard_approval", default=None
)
_validating: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "switchyard_validating", default=False
)


class Authenticator(Protocol):
    """Turns a call into its caller (or raises Unauthenticated)."""

    def __call__(self, context: grpc.aio.ServicerContext) -> Principal: ...


def local_operator(context: grpc.aio.ServicerContext) -> Principal:
    """No authentication: every caller acts as the local operator."""
    return Principal(
        user_id=LOCAL_OPERATOR.user_id,
        username=LOCAL_OPERATOR.username,
        role=LOCAL_OPERATOR.role,
        address=context.peer(),
    )


class CredentialAuthenticator:
    """Authentication on: a bearer token (`authorization: Bearer <token>` metadata), or a
    verified client certificate whose subject's common name is a username."""

    def __init__(self, access: AccessService) -> None:
        self._access = access

    def __call__(self, context: grpc.aio.ServicerContext) -> Principal:
        address = context.peer()
        for name, value in context.invocation_metadata() or ():
            if name == "authorization":
                text = value.decode() if isinstance(value, bytes) else value
                scheme, _, token = text.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise Unauthenticated("the authorization metadata must read `Bearer <token>`")
                return self._access.authenticate_token(token.strip(), address)
        username = client_certificate_name(context)
        if username is not None:
            return self._access.authenticate_certificate(username, address)
        raise Unauthenticated(
            "this server requires authentication: send `authorization: Bearer <token>` "
            "metadata (a site_admin creates tokens with `switchyard token create`) or "
            "connect with a client certificate"
        )


RELAY_KEY = "x-switchyard-relay-key"
"""Metadata proving a call comes from a relay this process trusts (its web console)."""
RELAYED_ADDRESS = "x-switchyard-client-address"
"""Metadata naming the address of the person a trusted relay makes the call for."""


def relayed(principal: Principal, context: grpc.aio.ServicerContext, key: str | None) -> Principal:
    """`principal` as the history should record it. A call the console makes for a
    browser reaches the server over its private socket; when it carries the console's
    `key`, the address it names for the browser is recorded instead of the socket's.
    Anyone else's claim of an address is ignored."""
    if key is None:
        return principal
    metadata = {name: value for name, value in context.invocation_metadata() or ()}
    given = metadata.get(RELAY_KEY, "")
    address = metadata.get(RELAYED_ADDRESS)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), key.encode()):
        return principal
    if not isinstance(address, str) or not address:
        return principal
    return dataclasses.replace(principal, address=f"{address} (console)")


def current_principal() -> Principal:
    """The caller of the RPC being served. Raises LookupError outside an intercepted call."""
    return _principal.get()


def bind(principal: Principal) -> None:
    """Makes the caller of the call being served known to `current_principal()`."""
    _principal.set(principal)


def applying(approval: Approval) -> contextvars.Token[Approval | None]:
    """Marks the write about to be served in this task as applying an approved change
    request: `write_context` then carries the approval into the write's transaction."""
    return _approval.set(approval)


def done_applying(token: contextvars.Token[Approval | None]) -> None:
    _approval.reset(token)


@contextlib.contextmanager
def validating() -> Iterator[None]:
    """The writes served in this block only validate (`WriteContext.validate_only`):
    how a proposed change is checked without being made."""
    token = _validating.set(True)
    try:
        yield
    finally:
        _validating.reset(token)


class WriteRequest(Protocol):
    """Every write request of the API carries these (the design test checks it)."""

    reason: str
    ticket: str


def write_context(request: WriteRequest) -> WriteContext:
    """The audit part of a write: the caller, the request's reason and ticket, and the
    approval it applies, if any."""
    return WriteContext(
        actor=current_principal(),
        reason=request.reason or None,
        ticket=request.ticket or None,
        approval=_approval.get(),
        validate_only=_validating.get(),
    )


__all__ = [
    "LOCAL_OPERATOR",
    "RELAYED_ADDRESS",
    "RELAY_KEY",
    "Authenticator",
    "CredentialAuthenticator",
    "WriteRequest",
    "applying",
    "bind",
    "current_principal",
    "done_applying",
    "local_operator",
    "relayed",
    "validating",
    "write_context",
]

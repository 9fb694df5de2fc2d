"""How the console reaches the API: the gRPC API itself, called as the signed-in user.

The console is a client like any other. Its pages call the same RPCs over one channel
to the server's private Unix socket, with the user's bearer token on every call, so the
interceptor authenticates each call, the permission table decides it, the services
validate it and the history records it with the user's name, exactly as for grpcurl or
the command line. The console holds no permission logic and no SQL of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc

from switchyard.client import field_violations
from switchyard.gen.v1 import (
    access_pb2_grpc,
    change_pb2_grpc,
    config_pb2_grpc,
    flag_pb2_grpc,
    rate_limit_pb2_grpc,
)

if TYPE_CHECKING:
    from switchyard.gen.v1.access_pb2_grpc import AccessServiceAsyncStub
    from switchyard.gen.v1.change_pb2_grpc import ChangeRequestServiceAsyncStub
    from switchyard.gen.v1.config_pb2_grpc import ConfigServiceAsyncStub
    from switchyard.gen.v1.flag_pb2_grpc import FlagServiceAsyncStub
    from switchyard.gen.v1.rate_limit_pb2_grpc import RateLimitServiceAsyncStub

T = TypeVar("T")

CALL_SECONDS = 10.0
"""How long a page waits for one call: a page that would hang says so instead."""

RELAY_KEY = "x-switchyard-relay-key"
CLIENT_ADDRESS = "x-switchyard-client-address"
"""With the relay key the server gave the console, metadata naming the browser's
address: the history records it for the console's calls instead of the console's own
socket (see `api.identity.relayed`)."""


@dataclass(frozen=True)
class Refusal(Exception):
    """A call the API refused: its status, its message, and the fields it named."""

    code: grpc.StatusCode
    message: str
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> Refusal:
        message = error.details() or error.code().name
        return cls(error.code(), message, dict(field_violations(error)))

    @property
    def code_name(self) -> str:
        return str(self.code.name)

    def __str__(self) -> str:
        return f"{self.code_name}: {self.message}"


async def unless_gone(reply: Awaitable[T]) -> T | None:
    """`reply`, or None when the API says what was asked for is not there (NOT_FOUND):
    what a live refresh of something deleted meanwhile gets, and shows by removing it."""
    try:
        return await reply
    except Refusal as refusal:
        if refusal.code == grpc.StatusCode.NOT_FOUND:
            return None
        raise


class Api:
    """The API's services, each call made as one user (`token`; none when the server
    runs without authentication) and failing with `Refusal`."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        token: str | None,
        client: str | None = None,
        relay_key: str | None = None,
    ) -> None:
        metadata: list[tuple[str, str]] = []
        if token:
            metadata.append(("authorization", f"Bearer {token}"))
        if client and relay_key:
            metadata.extend(((RELAY_KEY, relay_key), (CLIENT_ADDRESS, client)))
        self.metadata = tuple(metadata)
        # The stubs' overloads pick the async flavour for an aio channel, but grpcio has no
        # type information for mypy to see that with: say it.
        self.config = cast("ConfigServiceAsyncStub", config_pb2_grpc.ConfigServiceStub(channel))
        self.flags = cast("FlagServiceAsyncStub", flag_pb2_grpc.FlagServiceStub(channel))
        self.limits = cast(
            "RateLimitServiceAsyncStub", rate_limit_pb2_grpc.RateLimitServiceStub(channel)
        )
        self.changes = cast(
            "ChangeRequestServiceAsyncStub", change_pb2_grpc.ChangeRequestServiceStub(channel)
        )
        self.access = cast("AccessServiceAsyncStub", access_pb2_grpc.AccessServiceStub(channel))

    async def __call__(self, method: Callable[..., Awaitable[T]], request: Any) -> T:
        """`await api(api.config.GetValue, request)`: the reply, or Refusal."""
        try:
            return await method(request, metadata=self.metadata, timeout=CALL_SECONDS)
        except grpc.aio.AioRpcError as error:
            raise Refusal.of(error) from None

    @contextlib.asynccontextmanager
    async def stream(self, method: Callable[..., Any], request: Any) -> AsyncIterator[Any]:
        """A server stream (WatchConfig) as this user, cancelled on the way out."""
        call = method(request, metadata=self.metadata)
        try:
            yield call
        finally:
            call.cancel()


class Gateway:
    """One channel to the API, shared by every session. `relay_key` is the key the server
    trusts to name the browser's address (see `Api`)."""

    def __init__(self, target: str, relay_key: str | None = None) -> None:
        self._relay_key = relay_key
        self._channel = grpc.aio.insecure_channel(
            target,
            options=(
                ("grpc.initial_reconnect_backoff_ms", 100),
                ("grpc.max_reconnect_backoff_ms", 2_000),
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ),
        )

    def as_user(self, token: str | None, client: str | None = None) -> Api:
        return Api(self._channel, token, client, self._relay_key)

    async def close(self) -> None:
        await self._channel.close()


__all__ = [
    "CALL_SECONDS",
    "CLIENT_ADDRESS",
    "RELAY_KEY",
    "Api",
    "Gateway",
    "Refusal",
    "unless_gone",
]

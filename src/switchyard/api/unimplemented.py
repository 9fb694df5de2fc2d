"""Services of the public API that are designed but not served yet.

They are registered (so reflection lists them and clients can be generated against the
whole API) and answer UNIMPLEMENTED with a message saying what is missing.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from switchyard.gen.v1 import rate_limit_pb2

PENDING_SERVICES: tuple[ServiceDescriptor, ...] = (
    rate_limit_pb2.DESCRIPTOR.services_by_name["RateLimitService"],
)


def _refuse(full_name: str) -> Any:
    async def refuse(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{full_name} is part of the API but not served by this version yet",
        )
        raise AssertionError("unreachable: abort raises")

    return refuse


def register(server: grpc.aio.Server) -> None:
    """Registers every method of the pending services as UNIMPLEMENTED. Requests are not
    even parsed: the raw bytes pass through identity (de)serializers."""
    for service in PENDING_SERVICES:
        handlers = {
            method.name: grpc.unary_unary_rpc_method_handler(_refuse(method.full_name))
            for method in service.methods
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service.full_name, handlers),)
        )


__all__ = ["PENDING_SERVICES", "register"]

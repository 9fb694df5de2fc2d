"""gRPC health checking (`grpc.health.v1.Health`), whole.

grpcio-health-checking's asyncio servicer answers Check and Watch but not List, which the
protocol has had since 2024 and which the server advertises through reflection: a caller
listing every service's status got UNIMPLEMENTED ("Method not implemented!"). This
servicer adds List, from the statuses `set` has been given, NOT_SERVING for all of them
once the server shuts down, as Check answers.
"""

from __future__ import annotations

from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2

SERVICE_NAME: str = health.SERVICE_NAME


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """Check, Watch and List over the same statuses."""

    def __init__(self) -> None:
        super().__init__()
        self._listed: dict[str, Any] = {"": health_pb2.HealthCheckResponse.SERVING}
        self._shutting_down = False

    async def set(self, service: str, status: Any) -> None:
        """Sets a service's status; ignored once the server is shutting down."""
        await super().set(service, status)
        if not self._shutting_down:
            self._listed[service] = status

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING from now on."""
        await super().enter_graceful_shutdown()
        self._shutting_down = True
        self._listed = dict.fromkeys(self._listed, health_pb2.HealthCheckResponse.NOT_SERVING)

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        return health_pb2.HealthListResponse(
            statuses={
                name: health_pb2.HealthCheckResponse(status=status)
                for name, status in self._listed.items()
            }
        )


__all__ = ["SERVICE_NAME", "HealthServicer"]

"""grpc.health.v1.Health answers every method reflection says it has: List (which the
fuzz suite found answering UNIMPLEMENTED) lists what Check answers, service by service,
and every service as NOT_SERVING once the server shuts down."""

from __future__ import annotations

from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.api.health import HealthServicer
from switchyard.app import SERVED

from .conftest import serving

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def test_list_names_every_service_check_answers(tmp_path: Path) -> None:
    async with serving(tmp_path / "health.db") as running:
        health = health_pb2_grpc.HealthStub(running.channel)
        listed = await health.List(health_pb2.HealthListRequest())
        assert set(listed.statuses) == {"", *SERVED}
        for name, status in listed.statuses.items():
            checked = await health.Check(health_pb2.HealthCheckRequest(service=name))
            assert status.status == checked.status == SERVING


async def test_list_says_not_serving_once_shutting_down() -> None:
    servicer = HealthServicer()
    await servicer.set("switchyard.v1.ConfigService", SERVING)
    await servicer.enter_graceful_shutdown()
    await servicer.set("switchyard.v1.ConfigService", SERVING)  # ignored from now on
    listed = await servicer.List(health_pb2.HealthListRequest(), None)
    assert {name: s.status for name, s in listed.statuses.items()} == {
        "": NOT_SERVING,
        "switchyard.v1.ConfigService": NOT_SERVING,
    }

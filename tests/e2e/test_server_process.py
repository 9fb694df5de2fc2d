"""`python -m switchyard serve` as a user runs it: it starts on an empty directory,
creates and seeds its database, says where it listens, answers, and stops cleanly on
SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc

from .processes import start_server_process


async def test_serve_starts_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    process, address = await start_server_process(tmp_path)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="switchyard.v1.ConfigService")
            )
            answer = await config_pb2_grpc.ConfigServiceStub(channel).GetValue(
                pb.GetValueRequest(key="api.timeout", environment="production")
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        assert answer.value.number_value == 60
        assert (tmp_path / "data" / "switchyard.db").exists()
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)

    assert process.returncode == 0, err.decode()
    assert "stopped" in err.decode()


async def test_restart_keeps_data_and_does_not_seed_twice(tmp_path: Path) -> None:
    process, address = await start_server_process(tmp_path)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = config_pb2_grpc.ConfigServiceStub(channel)
        await stub.SetValue(
            pb.SetValueRequest(key="api.timeout", value=struct_pb2.Value(number_value=42))
        )
        first = await stub.GetHistory(pb.GetHistoryRequest(page_size=1000))
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.communicate(), timeout=30)

    process, address = await start_server_process(tmp_path)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = config_pb2_grpc.ConfigServiceStub(channel)
            answer = await stub.GetValue(pb.GetValueRequest(key="api.timeout"))
            second = await stub.GetHistory(pb.GetHistoryRequest(page_size=1000))
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.communicate(), timeout=30)

    assert answer.value.number_value == 42
    assert len(second.entries) == len(first.entries)
    assert second.revision == first.revision

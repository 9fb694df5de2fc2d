"""When the database refuses writes (another process holds its write lock past the busy
timeout), a write answers UNAVAILABLE with a retry hint and changes nothing; reads go on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import grpc
from google.rpc import error_details_pb2

from switchyard.app import open_application, start_server
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.settings import Settings

from .helpers import expect_status, rich_status, value


async def test_a_write_the_database_cannot_take_is_unavailable_and_changes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "busy.db"
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{path}?busy_timeout_ms=200")
    application = await open_application(settings)
    server, port, _ = await start_server(application, settings.listen)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = config_pb2_grpc.ConfigServiceStub(channel)
            before = await stub.GetValue(pb.GetValueRequest(key="api.timeout"))
            with sqlite3.connect(path, isolation_level=None) as other:
                other.execute("BEGIN IMMEDIATE")
                error = await expect_status(
                    stub.SetValue(pb.SetValueRequest(key="api.timeout", value=value(99))),
                    grpc.StatusCode.UNAVAILABLE,
                )
                during = await stub.GetValue(pb.GetValueRequest(key="api.timeout"))
                other.execute("ROLLBACK")
            after = await stub.GetValue(pb.GetValueRequest(key="api.timeout"))
    finally:
        await server.stop(None)
        await application.close()

    assert any(d.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for d in rich_status(error).details)
    assert "database" in (error.details() or "")
    assert during.value == before.value
    assert (after.value, after.version, after.revision) == (
        before.value,
        before.version,
        before.revision,
    )

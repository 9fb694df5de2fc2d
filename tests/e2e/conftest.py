"""A real Switchyard on loopback: a real SQLite file, a real grpc.aio server on port 0,
and real client stubs. Nothing is mocked."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchyard.app import Application, listen_credentials, open_application, start_server
from switchyard.gen.v1 import config_pb2_grpc
from switchyard.settings import Settings


@dataclass
class Running:
    application: Application
    address: str
    config: config_pb2_grpc.ConfigServiceStub
    channel: grpc.aio.Channel
    server: grpc.aio.Server
    settings: Settings


@contextlib.asynccontextmanager
async def serving(
    database: Path,
    *,
    channel_credentials: grpc.ChannelCredentials | None = None,
    **settings: Any,
) -> AsyncIterator[Running]:
    """A server over the SQLite file `database` (created and seeded when new), with
    `settings` overriding the defaults; stopped as `switchyard serve` stops. TLS settings
    (`tls_cert`, ...) make it listen as `switchyard serve` would with them; the stubs of
    `Running` then connect with `channel_credentials`."""
    options = {"listen": "127.0.0.1:0", "database_url": f"sqlite:///{database}", **settings}
    configured = Settings(**options)
    credentials = listen_credentials(configured)
    application = await open_application(configured)
    server, port, _ = await start_server(application, configured.listen, credentials=credentials)
    address = f"127.0.0.1:{port}"
    channel = (
        grpc.aio.insecure_channel(address)
        if channel_credentials is None
        else grpc.aio.secure_channel(address, channel_credentials)
    )
    try:
        yield Running(
            application,
            address,
            config_pb2_grpc.ConfigServiceStub(channel),
            channel,
            server,
            configured,
        )
    finally:
        application.stop_watchers()
        await channel.close()
        await server.stop(None)
        await application.close()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A server over a new database seeded with the demo keys."""
    async with serving(tmp_path / "e2e.db") as server:
        yield server

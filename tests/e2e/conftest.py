"""A real Switchyard on loopback: a real SQLite file, a real grpc.aio server on port 0,
and real client stubs. Nothing is mocked."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchyard.app import (
    Application,
    listen_credentials,
    open_application,
    serve_console,
    start_server,
)
from switchyard.console import RunningConsole
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
    console: RunningConsole | None = None


@contextlib.asynccontextmanager
async def serving(
    database: Path,
    *,
    channel_credentials: grpc.ChannelCredentials | None = None,
    console: bool = False,
    **settings: Any,
) -> AsyncIterator[Running]:
    """A server over the SQLite file `database` (created and seeded when new), with
    `settings` overriding the defaults; stopped as `switchyard serve` stops. TLS settings
    (`tls_cert`, ...) make it listen as `switchyard serve` would with them; the stubs of
    `Running` then connect with `channel_credentials`. With `console`, the web console
    runs beside it as `switchyard serve` runs it (on `console_listen`, a free loopback
    port unless given, over the server's private socket)."""
    options = {
        "listen": "127.0.0.1:0",
        "database_url": f"sqlite:///{database}",
        "console_listen": "127.0.0.1:0",
        **settings,
    }
    configured = Settings(**options)
    credentials = listen_credentials(configured)
    application = await open_application(configured)
    private = tempfile.TemporaryDirectory(prefix="switchyard-test-") if console else None
    socket_path = f"{private.name}/api.sock" if private else None
    server, port, _ = await start_server(
        application, configured.listen, credentials=credentials, private_socket=socket_path
    )
    web: RunningConsole | None = None
    if socket_path is not None and configured.console_listen:
        web = await serve_console(application, socket_path)
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
            web,
        )
    finally:
        application.stop_watchers()
        if web is not None:
            await web.stop()
        await channel.close()
        await server.stop(None)
        await application.close()
        if private is not None:
            private.cleanup()


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    """A server over a new database seeded with the demo keys."""
    async with serving(tmp_path / "e2e.db") as server:
        yield server

"""Real servers for the client: a real SQLite file, a real grpc.aio server on loopback,
and the freedom to stop it and start another on the same port over the same file, as a
deployment does. Nothing is mocked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.app import Application, open_application, start_server
from switchyard.client import Client
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

# Reconnect to a restarted test server within half a second, whatever grpc's backoff.
FAST_RECONNECT = (("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 500))
TEST_WRITE = WriteContext(actor=LOCAL_OPERATOR, reason="client test")


class Switchyard:
    """One database file and the server currently serving it (at most one at a time)."""

    def __init__(
        self, database: Path, *, progress_seconds: float = 0.2, queue_revisions: int = 1024
    ) -> None:
        self.database = database
        self.progress_seconds = progress_seconds
        self.queue_revisions = queue_revisions
        self.port = 0
        self.application: Application | None = None
        self._server: grpc.aio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def app(self) -> Application:
        assert self.application is not None, "no application is open"
        return self.application

    async def open(self) -> Application:
        """Opens the database (seeding the demo keys when new) without serving it yet,
        so a test can change things while clients are cut off."""
        settings = Settings(
            listen=self.address,
            database_url=f"sqlite:///{self.database}",
            watch_progress_seconds=self.progress_seconds,
            watch_queue_revisions=self.queue_revisions,
            poll_seconds=0.2,
        )
        self.application = await open_application(settings)
        return self.application

    async def serve(self) -> None:
        """Serves the open application: on a new port the first time, then on that same
        port again."""
        server, port, _ = await start_server(self.app, self.address)
        self._server, self.port = server, port

    async def start(self) -> None:
        await self.open()
        await self.serve()

    async def stop(self) -> None:
        """Ends the watch streams with UNAVAILABLE, stops the server, closes the store."""
        if self.application is not None:
            self.application.stop_watchers()
        if self._server is not None:
            await self._server.stop(None)
            self._server = None
        if self.application is not None:
            await self.application.close()
            self.application = None


@pytest.fixture
async def switchyard(tmp_path: Path) -> AsyncIterator[Switchyard]:
    """A server over a new database seeded with the demo keys, progress every 0.2 s."""
    running = Switchyard(tmp_path / "client.db")
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(switchyard: Switchyard) -> AsyncIterator[Client]:
    async with Client(switchyard.address, channel_options=FAST_RECONNECT) as connected:
        yield connected


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    """Waits until `check()` holds, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {seconds} s")
        await asyncio.sleep(0.01)

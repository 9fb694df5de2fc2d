"""Reading a WatchConfig stream in the background, as a client does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf.json_format import MessageToDict

from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import config_pb2_grpc


@dataclass
class Watcher:
    """Everything one stream sent, and how it ended."""

    events: list[pb.ChangeEvent] = field(default_factory=list)
    progress: list[int] = field(default_factory=list)
    error: grpc.aio.AioRpcError | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, predicate: Callable[[Watcher], bool], within: float = 5.0) -> None:
        """Waits until `predicate(self)` holds; fails if the stream ends first."""

        async def wait() -> None:
            while not predicate(self):
                self.arrived.clear()
                if self.error is not None:
                    raise AssertionError(f"the stream ended: {self.error.code()}")
                await self.arrived.wait()

        await asyncio.wait_for(wait(), within)

    def revisions(self) -> list[int]:
        return [e.revision for e in self.events]

    def values(self, key: str) -> list[object]:

        return [
            MessageToDict(e.value) if e.value.WhichOneof("kind") else None
            for e in self.events
            if e.key == key
        ]


@contextlib.asynccontextmanager
async def watching(
    stub: config_pb2_grpc.ConfigServiceStub, request: pb.WatchConfigRequest
) -> AsyncIterator[Watcher]:
    watcher = Watcher()
    call = stub.WatchConfig(request)

    async def read() -> None:
        try:
            async for message in call:
                if message.HasField("event"):
                    watcher.events.append(message.event)
                else:
                    watcher.progress.append(message.progress.revision)
                watcher.arrived.set()
        except grpc.aio.AioRpcError as error:
            watcher.error = error
            watcher.arrived.set()

    task = asyncio.create_task(read())
    try:
        yield watcher
    finally:
        call.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

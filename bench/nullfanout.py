"""The fan-out baseline: a streaming RPC that delivers a published message to every open
stream with as little server work as asyncio allows.

The watch fan-out benchmark measures `WatchConfig`, whose path per event and stream is
the change bus, the watch service and its L1 read, the mapping to protobuf and four
nested async generators. The same clients against this stream, through the same server
stack (the server interceptor: the methods are under `/switchyard.`), show what delivering
one message to N streams costs without any of that: grpc.aio, the loops and the
clients' own receive loops. The difference between the two is Switchyard's.

- `/switchyard.bench.v1.Fanout/NullWatch` (`Empty` in, a stream of `WatchConfigResponse`):
  every message published since the server started, in order, then each new one.
- `/switchyard.bench.v1.Fanout/Publish` (`WatchConfigResponse` in, `Empty` out): stamps
  the event's `changed_at`, appends it and wakes every stream with one future. The
  bench publishes what WatchConfig would send for its SetValue (see `event`), so the
  messages on the wire are the same size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf import empty_pb2

from switchyard.gen.v1 import config_pb2 as pb

SERVICE = "switchyard.bench.v1.Fanout"
WATCH_METHOD = "NullWatch"
PUBLISH_METHOD = "Publish"
WATCH_PATH = f"/{SERVICE}/{WATCH_METHOD}"
PUBLISH_PATH = f"/{SERVICE}/{PUBLISH_METHOD}"
KEY, ENVIRONMENT = "api.timeout", "production"

_EMPTY = empty_pb2.Empty()


class Broadcaster:
    """Every message published, kept, and one future that the next publish resolves.

    Each stream keeps its own index into the list, so a stream that is still sending
    when two messages are published gets both, in order, once: the same guarantee the
    change bus gives (without its bound)."""

    def __init__(self) -> None:
        self.messages: list[pb.WatchConfigResponse] = []
        self._changed: asyncio.Future[None] | None = None

    def publish(self, message: pb.WatchConfigResponse) -> None:
        self.messages.append(message)
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    def changed(self) -> asyncio.Future[None]:
        if self._changed is None:
            self._changed = asyncio.get_running_loop().create_future()
        return self._changed


def event(revision: int, value: float) -> pb.WatchConfigResponse:
    """What WatchConfig sends for a SetValue of `api.timeout` in production."""
    message = pb.WatchConfigResponse(
        event=pb.ChangeEvent(
            revision=revision,
            kind=pb.CHANGE_KIND_CONFIG,
            key=KEY,
            environment=ENVIRONMENT,
            action=pb.HISTORY_ACTION_UPDATE,
            source=pb.VALUE_SOURCE_OVERRIDE,
        )
    )
    message.event.value.number_value = value
    return message


def handler(broadcaster: Broadcaster) -> grpc.GenericRpcHandler:
    async def watch(
        request: empty_pb2.Empty, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchConfigResponse]:
        sent = 0
        while True:
            while sent < len(broadcaster.messages):
                yield broadcaster.messages[sent]
                sent += 1
            await broadcaster.changed()

    async def publish(
        request: pb.WatchConfigResponse, context: grpc.aio.ServicerContext
    ) -> empty_pb2.Empty:
        request.event.changed_at.FromDatetime(datetime.now(UTC))
        broadcaster.publish(request)
        return _EMPTY

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            WATCH_METHOD: grpc.unary_stream_rpc_method_handler(
                watch,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=pb.WatchConfigResponse.SerializeToString,
            ),
            PUBLISH_METHOD: grpc.unary_unary_rpc_method_handler(
                publish,
                request_deserializer=pb.WatchConfigResponse.FromString,
                response_serializer=empty_pb2.Empty.SerializeToString,
            ),
        },
    )

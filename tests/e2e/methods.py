"""The methods a running server answers, found by asking it rather than read from a list
kept by hand: every method of every service whose descriptor this process has loaded
(Switchyard's own, flagd's, Envoy's, health, reflection, and whatever else was imported)
is called once with an empty message and no credentials, and those that do not answer
UNIMPLEMENTED are served. A handler registered for a service whose descriptor nobody
loaded is not found this way; the interceptor refuses such methods anyway (see
tests/api/test_interceptor.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor

PROBE_SECONDS = 5.0
"""How long one probe may take: far above the milliseconds a refusal takes on loopback,
so that a busy machine does not turn a served method into a missing one."""


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    trailers: tuple[tuple[str, str | bytes], ...] = ()


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def loaded_methods() -> dict[str, MethodDescriptor]:
    """Every method of every service declared by a generated module loaded so far."""
    found: dict[str, MethodDescriptor] = {}
    for module in list(sys.modules.values()):
        file = getattr(module, "DESCRIPTOR", None)
        if not isinstance(file, FileDescriptor):
            continue
        for service in file.services_by_name.values():
            for method in service.methods:
                found[path(method)] = method
    return found


async def call_raw(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    payload: bytes,
    metadata: Sequence[tuple[str, str]] = (),
) -> Answer:
    """Calls `method` with `payload` as the request's bytes (identity serializers, so
    the bytes go out exactly as given). A response stream counts as OK once it sends a
    message or stays open for half a second; a request stream sends `payload` once."""
    name = path(method)
    options = {"request_serializer": None, "response_deserializer": None}
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            if method.client_streaming:
                if method.server_streaming:
                    stream = channel.stream_stream(name, **options)(metadata=tuple(metadata))
                else:
                    stream = channel.stream_unary(name, **options)(metadata=tuple(metadata))
                await stream.write(payload)
                await stream.done_writing()
                if method.server_streaming:
                    await _first(stream)
                else:
                    await stream
            elif method.server_streaming:
                await _first(channel.unary_stream(name, **options)(payload, metadata=metadata))
            else:
                await channel.unary_unary(name, **options)(payload, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return Answer(error.code(), error.details() or "", tuple(error.trailing_metadata() or ()))
    return Answer(grpc.StatusCode.OK, "")


async def _first(stream: grpc.aio.Call) -> None:
    try:
        await asyncio.wait_for(stream.read(), 0.5)  # type: ignore[attr-defined]
    except TimeoutError:
        pass
    finally:
        stream.cancel()


async def served_methods(channel: grpc.aio.Channel) -> dict[str, MethodDescriptor]:
    """The loaded methods the server behind `channel` answers (see the module's text)."""
    served = {}
    for name, method in sorted(loaded_methods().items()):
        answer = await call_raw(channel, method, b"")
        if answer.code != grpc.StatusCode.UNIMPLEMENTED:
            served[name] = method
    return served


__all__ = ["Answer", "call_raw", "loaded_methods", "path", "served_methods"]

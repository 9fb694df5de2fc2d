"""GetValue's Python hot path in isolation: no network, no gRPC core, no load generator.

Under load, most of the server's time is spent in native code (uvloop, grpc's Cython aio
server, protobuf's C extension) that a Python profiler sees only as time under the event
loop. Timing the Python steps one by one, in a tight loop on the same interpreter, shows
how many microseconds Switchyard's own code adds per call and which step they go to.
Tight loops run with hot caches, so under load each step costs more than here; the
proportions hold.

It builds the handler chain as `start_server` does: the server interceptor around the
ConfigServicer's GetValue (or the null RPC).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2

from bench.server import NULL_PATH, null_handler
from bench.stats import median
from bench.workloads import GET_VALUE
from switchyard.api import mapping
from switchyard.api.config import ConfigServicer
from switchyard.api.identity import local_operator
from switchyard.api.interceptor import SwitchyardInterceptor
from switchyard.app import open_application
from switchyard.gen.v1 import config_pb2
from switchyard.settings import Settings

Step = Callable[[], Awaitable[object]]


class _Context:
    """What the interceptors ask of a ServicerContext on the success path."""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("user-agent", "h2load nghttp2/1.52.0"),)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def _chain(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """`handler` wrapped by the server's interceptor."""

    async def core(_details: Any) -> grpc.RpcMethodHandler:
        return handler

    return await SwitchyardInterceptor().intercept_service(core, _Details(method))


async def _time(step: Step, calls: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean µs per call of `calls` calls."""
    for _ in range(calls // 10):
        await step()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            await step()
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return median(samples)


async def _measure(workdir: Path, calls: int) -> dict[str, float]:
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{workdir}/hot.db")
    application = await open_application(settings)
    try:
        service = application.config
        servicer = ConfigServicer(service, application.watch)
        get_handler = await _chain(
            GET_VALUE.path, grpc.unary_unary_rpc_method_handler(servicer.GetValue)
        )
        null_method = null_handler().service(_Details(NULL_PATH))
        assert null_method is not None
        null_chain = await _chain(NULL_PATH, null_method)
        context = _Context()
        request = config_pb2.GetValueRequest.FromString(GET_VALUE.request)
        read = await service.get_value(request.key, request.environment)
        response = mapping.resolved_to_proto(read.value, read.revision)
        empty = empty_pb2.Empty()

        async def null_rpc() -> object:
            return await null_chain.unary_unary(empty, context)

        async def get_rpc() -> object:
            return await get_handler.unary_unary(request, context)

        async def parse() -> object:
            return config_pb2.GetValueRequest.FromString(GET_VALUE.request)

        async def authenticate() -> object:
            return local_operator(context.invocation_metadata(), context.peer())

        async def cache_get() -> object:
            return service.cache.get(request.key, request.environment)

        async def get_value() -> object:
            return await service.get_value(request.key, request.environment)

        async def to_proto() -> object:
            return mapping.resolved_to_proto(read.value, read.revision)

        async def serialize() -> object:
            return response.SerializeToString()

        steps: dict[str, Step] = {
            "null RPC: interceptor + handler": null_rpc,
            "GetValue: interceptor + handler": get_rpc,
            "  request parse (GetValueRequest)": parse,
            "  identity: local_operator per call": authenticate,
            "  LocalCache.get": cache_get,
            "  ConfigService.get_value (cached)": get_value,
            "  mapping.resolved_to_proto": to_proto,
            "  response SerializeToString": serialize,
        }
        return {name: await _time(step, calls) for name, step in steps.items()}
    finally:
        await application.close()


def measure(calls: int = 20_000) -> dict[str, float]:
    """µs per call of each step, on uvloop as the server runs."""
    with tempfile.TemporaryDirectory(prefix="switchyard-hotpath-") as workdir:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
            return asyncio.run(_measure(Path(workdir), calls))
        return uvloop.run(_measure(Path(workdir), calls))

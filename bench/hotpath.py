"""An RPC's Python hot path in isolation (GetValue's, EvaluateFlag's): no network, no gRPC
core, no load generator.

Under load, most of the server's time is spent in native code (uvloop, grpc's Cython aio
server, protobuf's C extension) that a Python profiler sees only as time under the event
loop. Timing the Python steps one by one, in a tight loop on the same interpreter, shows
how many microseconds Switchyard's own code adds per call and which step they go to.
Tight loops run with hot caches, so under load each step costs more than here; the
proportions hold.

It builds the handler chain as `start_server` does: the server interceptor around the
ConfigServicer's GetValue or the FlagServicer's EvaluateFlag (or the null RPC).
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
from bench.workloads import EVALUATE_FLAG, FLAG, GET_VALUE
from switchyard.api import flag_mapping, mapping
from switchyard.api.config import ConfigServicer
from switchyard.api.flags import FlagServicer
from switchyard.api.identity import LOCAL_OPERATOR, CredentialAuthenticator, local_operator
from switchyard.api.interceptor import Gate, SwitchyardInterceptor
from switchyard.api.permissions import Rule
from switchyard.app import Application, open_application
from switchyard.domain.access import Permission
from switchyard.domain.models import Grant
from switchyard.gen.v1 import config_pb2, flag_pb2
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

Step = Callable[[], Awaitable[object]]


class _Context:
    """What the interceptors ask of a ServicerContext on the success path."""

    def __init__(self, token: str | None = None) -> None:
        self._metadata: tuple[tuple[str, str], ...] = (("user-agent", "h2load nghttp2/1.52.0"),)
        if token is not None:
            self._metadata += (("authorization", f"Bearer {token}"),)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

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

    gate = Gate()
    gate.add_rules({NULL_PATH: Rule(Permission.READ)})  # as bench.server serves it
    return await SwitchyardInterceptor(gate).intercept_service(core, _Details(method))


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


async def _null_steps(application: Application, context: _Context) -> dict[str, Step]:
    null_method = null_handler().service(_Details(NULL_PATH))
    assert null_method is not None
    null_chain = await _chain(NULL_PATH, null_method)
    empty = empty_pb2.Empty()

    async def null_rpc() -> object:
        return await null_chain.unary_unary(empty, context)

    return {"null RPC: interceptor + handler": null_rpc}


async def _get_value_steps(application: Application, context: _Context) -> dict[str, Step]:
    service = application.config
    servicer = ConfigServicer(service, application.watch)
    get_handler = await _chain(
        GET_VALUE.path, grpc.unary_unary_rpc_method_handler(servicer.GetValue)
    )
    request = config_pb2.GetValueRequest.FromString(GET_VALUE.request)
    read = await service.get_value(request.key, request.environment)
    response = mapping.resolved_to_proto(read.value, read.revision)

    async def get_rpc() -> object:
        return await get_handler.unary_unary(request, context)

    async def parse() -> object:
        return config_pb2.GetValueRequest.FromString(GET_VALUE.request)

    async def authenticate() -> object:
        return local_operator(context)

    open_gate = Gate()
    secret, _, _ = await application.access.create_token(
        "bench", [Grant("reader")], WriteContext(LOCAL_OPERATOR, "bench")
    )
    token_gate = Gate(
        CredentialAuthenticator(application.access),
        protected=lambda: application.access.protected_environments,
    )
    token_context = _Context(token=secret)

    async def admit_open() -> object:
        await open_gate.admit(GET_VALUE.path, request, context)
        return None

    async def admit_token() -> object:
        await token_gate.admit(GET_VALUE.path, request, token_context)
        return None

    async def cache_get() -> object:
        return service.cache.get(request.key, request.environment)

    async def get_value() -> object:
        return await service.get_value(request.key, request.environment)

    async def to_proto() -> object:
        return mapping.resolved_to_proto(read.value, read.revision)

    async def serialize() -> object:
        return response.SerializeToString()

    return {
        "GetValue: interceptor + handler": get_rpc,
        "  request parse (GetValueRequest)": parse,
        "  identity: local_operator per call": authenticate,
        "  gate, authentication off (identity + permission table)": admit_open,
        "  gate, bearer token (hash, lookup, grants, permission table)": admit_token,
        "  LocalCache.get": cache_get,
        "  ConfigService.get_value (cached)": get_value,
        "  mapping.resolved_to_proto": to_proto,
        "  response SerializeToString": serialize,
    }


async def _evaluate_flag_steps(application: Application, context: _Context) -> dict[str, Step]:
    """EvaluateFlag's steps, on the benchmark's flag, created through the service as the
    UpsertFlag RPC would (the gRPC layer's own part of a write is not what is timed)."""
    service = application.flags
    await service.upsert_flag(
        flag_mapping.flag_from_proto(FLAG), None, WriteContext(LOCAL_OPERATOR, "bench")
    )
    servicer = FlagServicer(service)
    handler = await _chain(
        EVALUATE_FLAG.path, grpc.unary_unary_rpc_method_handler(servicer.EvaluateFlag)
    )
    request = flag_pb2.EvaluateFlagRequest.FromString(EVALUATE_FLAG.request)
    evaluation_context = flag_mapping.context_from_proto(request.context)
    evaluation, revision = service.evaluate(request.flag_key, evaluation_context)
    response = flag_mapping.evaluation_to_proto(evaluation, revision)
    EVALUATE_FLAG.check(response.SerializeToString())  # the same path as under load
    flags, now = service.flag_set, service.now()

    async def evaluate_rpc() -> object:
        return await handler.unary_unary(request, context)

    async def parse() -> object:
        return flag_pb2.EvaluateFlagRequest.FromString(EVALUATE_FLAG.request)

    async def to_context() -> object:
        return flag_mapping.context_from_proto(request.context)

    async def engine() -> object:
        return flags.evaluate(request.flag_key, evaluation_context, now)

    async def evaluate() -> object:
        return service.evaluate(request.flag_key, evaluation_context)

    async def to_proto() -> object:
        return flag_mapping.evaluation_to_proto(evaluation, revision)

    async def serialize() -> object:
        return response.SerializeToString()

    return {
        "EvaluateFlag: interceptor + handler": evaluate_rpc,
        "  request parse (EvaluateFlagRequest)": parse,
        "  flag_mapping.context_from_proto": to_context,
        "  FlagSet.evaluate (the engine alone)": engine,
        "  FlagService.evaluate (engine, counts)": evaluate,
        "  flag_mapping.evaluation_to_proto": to_proto,
        "  response SerializeToString": serialize,
    }


StepsFor = Callable[[Application, _Context], Awaitable[dict[str, Step]]]
_STEPS: dict[str, StepsFor] = {"getvalue": _get_value_steps, "evalflag": _evaluate_flag_steps}
"""Each RPC-against-null benchmark's steps, by its name (`Comparison.name`)."""


async def _measure(workdir: Path, calls: int, steps_for: StepsFor) -> dict[str, float]:
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{workdir}/hot.db")
    application = await open_application(settings)
    try:
        context = _Context()
        steps = await _null_steps(application, context)
        steps.update(await steps_for(application, context))
        return {name: await _time(step, calls) for name, step in steps.items()}
    finally:
        await application.close()


def measure(benchmark: str = "getvalue", calls: int = 20_000) -> dict[str, float]:
    """µs per call of each step of `benchmark`'s RPC (and of the null RPC), on uvloop as
    the server runs."""
    steps_for = _STEPS[benchmark]
    with tempfile.TemporaryDirectory(prefix="switchyard-hotpath-") as workdir:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux and macOS
            return asyncio.run(_measure(Path(workdir), calls, steps_for))
        return uvloop.run(_measure(Path(workdir), calls, steps_for))

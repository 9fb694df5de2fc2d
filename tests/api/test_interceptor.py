"""api.interceptor fails closed: a handler of any shape, registered on the real server
under any name, is served only behind the gate, and only with a permission rule; health
and reflection are the only methods open to everyone, and they are listed by name.
Tested over a real grpc.aio server (`switchyard.app.start_server`) on loopback."""

from __future__ import annotations

import contextlib
import gc
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from switchyard.api.identity import LOCAL_OPERATOR
from switchyard.api.interceptor import SwitchyardInterceptor
from switchyard.api.permissions import OPEN, Rule
from switchyard.app import open_application, start_server
from switchyard.domain.access import Permission, Target, parse_grant
from switchyard.service.context import WriteContext
from switchyard.settings import Settings

SERVICE = "acme.v1.Tools"
METHODS = {
    "Echo": (False, False),
    "Tail": (False, True),
    "Upload": (True, False),
    "Chat": (True, True),
}
"""Method name: (request stream, response stream), one of each shape."""


@dataclass
class Served:
    channel: grpc.aio.Channel
    token: str
    ran: list[str] = field(default_factory=list)


def _handlers(ran: list[str]) -> grpc.GenericRpcHandler:
    decode, encode = struct_pb2.Struct.FromString, struct_pb2.Struct.SerializeToString
    answer = struct_pb2.Struct()
    answer.fields["ok"].bool_value = True

    async def echo(request: Any, context: Any) -> struct_pb2.Struct:
        ran.append("Echo")
        return answer

    async def tail(request: Any, context: Any) -> AsyncIterator[struct_pb2.Struct]:
        ran.append("Tail")
        yield answer

    async def upload(requests: AsyncIterator[Any], context: Any) -> struct_pb2.Struct:
        ran.append("Upload")
        async for _ in requests:
            pass
        return answer

    async def chat(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[struct_pb2.Struct]:
        ran.append("Chat")
        async for _ in requests:
            yield answer

    options = {"request_deserializer": decode, "response_serializer": encode}
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo, **options),
            "Tail": grpc.unary_stream_rpc_method_handler(tail, **options),
            "Upload": grpc.stream_unary_rpc_method_handler(upload, **options),
            "Chat": grpc.stream_stream_rpc_method_handler(chat, **options),
        },
    )


@contextlib.asynccontextmanager
async def serve_tools(tmp_path: Path, rules: dict[str, Rule]) -> AsyncIterator[Served]:
    """Switchyard with authentication on, also serving the four acme methods under
    `rules` (by method name), and a site_admin's token."""
    settings = Settings(
        listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'tools.db'}", auth=True
    )
    application = await open_application(settings)
    ran: list[str] = []
    server, port, _ = await start_server(
        application,
        settings.listen,
        extra_handlers=[_handlers(ran)],
        extra_rules={f"/{SERVICE}/{name}": rule for name, rule in rules.items()},
    )
    token, _, _ = await application.access.create_token(
        "tools-admin", [parse_grant("site_admin")], WriteContext(actor=LOCAL_OPERATOR)
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(channel, token, ran)
    finally:
        await channel.close()
        await server.stop(None)
        await application.close()


async def call(
    channel: grpc.aio.Channel, name: str, token: str | None, payload: bytes = b""
) -> grpc.StatusCode:
    """Calls acme method `name` with `payload` as the (one) request's bytes."""
    path = f"/{SERVICE}/{name}"
    streamed, responses = METHODS[name]
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    try:
        if streamed:
            factory = channel.stream_stream if responses else channel.stream_unary
            stream = factory(path, **raw)(metadata=metadata)
            try:
                await stream.write(payload)
                await stream.done_writing()
            except grpc.aio.AioRpcError:
                # The server may answer (a refusal) before the request is written; the
                # write then fails on the client's side ("Internal error from Core"),
                # and the call's own status is the server's answer.
                return await stream.code()
            if responses:
                async for _ in stream:
                    pass
            else:
                await stream
        elif responses:
            async for _ in channel.unary_stream(path, **raw)(payload, metadata=metadata):
                pass
        else:
            await channel.unary_unary(path, **raw)(payload, metadata=metadata)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_a_method_without_a_rule_is_refused_whatever_its_shape(
    tmp_path: Path, name: str
) -> None:
    async with serve_tools(tmp_path, rules={}) as served:
        assert await call(served.channel, name, served.token) == grpc.StatusCode.PERMISSION_DENIED
        assert await call(served.channel, name, None) == grpc.StatusCode.UNAUTHENTICATED
        assert served.ran == [], "the handler must not run"


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_a_method_with_a_rule_is_served_behind_the_gate_whatever_its_shape(
    tmp_path: Path, name: str
) -> None:
    async with serve_tools(tmp_path, rules={name: Rule(Permission.READ)}) as served:
        assert await call(served.channel, name, None) == grpc.StatusCode.UNAUTHENTICATED
        assert served.ran == []
        assert await call(served.channel, name, served.token) == grpc.StatusCode.OK
        assert served.ran == [name]


@pytest.mark.parametrize("name", ["Upload", "Chat"])
async def test_a_request_stream_cannot_be_checked_against_a_rule_that_reads_one_request(
    tmp_path: Path, name: str
) -> None:
    """Such a rule names what one request touches; with a stream there is no one request
    to read before the handler runs, so the call is refused rather than let through."""
    rule = Rule(Permission.READ, targets=lambda request: (Target(None, request.key),))
    async with serve_tools(tmp_path, rules={name: rule}) as served:
        assert await call(served.channel, name, served.token) == grpc.StatusCode.PERMISSION_DENIED
        assert served.ran == []


@pytest.mark.parametrize("name", sorted(METHODS))
async def test_malformed_requests_are_invalid_argument_whatever_the_shape(
    tmp_path: Path, name: str
) -> None:
    async with serve_tools(tmp_path, rules={name: Rule(Permission.READ)}) as served:
        code = await call(served.channel, name, served.token, payload=b"\x0a\x05ab")
        assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_only_health_and_reflection_are_open() -> None:
    assert {path.strip("/").split("/")[0] for path in OPEN} == {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


async def test_names_nobody_registered_are_not_remembered() -> None:
    """A caller may name any method: the interceptor keeps nothing per unknown name
    (bound: 200 KiB over 20,000 names; remembering them cost over 1 MiB)."""
    interceptor = SwitchyardInterceptor()

    async def nothing(details: Any) -> None:
        return None

    for index in range(100):  # warm up whatever is allocated once
        await interceptor.intercept_service(nothing, _Details(f"/warm.up/M{index}"))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(20_000):
            answer = await interceptor.intercept_service(
                nothing, _Details(f"/made.up.Service{index}/Method{index}")
            )
            assert answer is None
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 200 * 1024, f"{grown} bytes kept for names nobody registered"

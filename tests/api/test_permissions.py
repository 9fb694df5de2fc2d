"""One table names what every RPC needs. The methods are those the running server
answers (asked of the server itself, tests/e2e/methods.py), not a list kept by hand: each
has a rule and is gated, or is one of the few open ones (health, reflection); and
nothing in the table names a method that is not served."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2
from google.protobuf.descriptor import MethodDescriptor

from switchyard import app
from switchyard.api.permissions import OPEN, RULES
from switchyard.domain.access import Permission
from switchyard.settings import Settings

from ..e2e.conftest import Running, serving
from ..e2e.methods import call_raw, served_methods


@pytest.fixture
async def answered(tmp_path: Path) -> AsyncIterator[tuple[Running, dict[str, MethodDescriptor]]]:
    """A server with authentication on, and the methods it answers."""
    async with serving(tmp_path / "permissions.db", auth=True) as running:
        yield running, await served_methods(running.channel)


async def test_every_method_the_server_answers_has_a_rule_or_is_open(
    answered: tuple[Running, dict[str, MethodDescriptor]],
) -> None:
    _, served = answered
    assert len(served) > 60, "the probe found the server's methods"
    missing = sorted(set(served) - RULES.keys() - OPEN)
    assert not missing, f"methods served with no permission rule: {missing}"
    assert {p.strip("/").split("/")[0] for p in set(served) & OPEN} == {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_the_table_names_no_method_that_is_not_served(
    answered: tuple[Running, dict[str, MethodDescriptor]],
) -> None:
    _, served = answered
    extra = sorted(RULES.keys() - set(served))
    assert not extra, f"rules for methods nobody serves: {extra}"


async def test_every_method_but_the_open_ones_refuses_a_caller_without_credentials(
    answered: tuple[Running, dict[str, MethodDescriptor]],
) -> None:
    running, served = answered
    for path, method in sorted(served.items()):
        answer = await call_raw(running.channel, method, b"")
        if path in OPEN:
            assert answer.code != grpc.StatusCode.UNAUTHENTICATED, path
        else:
            assert answer.code == grpc.StatusCode.UNAUTHENTICATED, f"{path}: {answer}"


async def test_reflection_lists_every_service_the_server_answers(
    answered: tuple[Running, dict[str, MethodDescriptor]],
) -> None:
    _, served = answered
    services = {method.containing_service.full_name for method in served.values()}
    assert services == set(app.LISTED)


def _hidden_service() -> str:
    """A service declared in a file of the default pool (as a generated module would),
    held by a module in sys.modules so that the probe loads it; returns its method path."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName("tests/acme_hidden.proto")
    except KeyError:
        empty = ".google.protobuf.Empty"
        pool.Add(
            descriptor_pb2.FileDescriptorProto(
                name="tests/acme_hidden.proto",
                package="acme.hidden.v1",
                dependency=["google/protobuf/empty.proto"],
                service=[
                    descriptor_pb2.ServiceDescriptorProto(
                        name="Hidden",
                        method=[
                            descriptor_pb2.MethodDescriptorProto(
                                name="Peek", input_type=empty, output_type=empty
                            )
                        ],
                    )
                ],
            )
        )
    module = types.ModuleType("tests_acme_hidden_pb2")
    module.DESCRIPTOR = pool.FindFileByName("tests/acme_hidden.proto")  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    return "/acme.hidden.v1.Hidden/Peek"


async def test_the_probe_finds_a_method_registered_without_a_rule(tmp_path: Path) -> None:
    """What the tests above rely on: a handler someone registers without a rule is
    found by asking the server (and the interceptor refuses it meanwhile)."""
    path = _hidden_service()

    async def peek(request: empty_pb2.Empty, context: object) -> empty_pb2.Empty:
        raise AssertionError("a method with no rule must not run")

    hidden = grpc.method_handlers_generic_handler(
        "acme.hidden.v1.Hidden",
        {
            "Peek": grpc.unary_unary_rpc_method_handler(
                peek,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=empty_pb2.Empty.SerializeToString,
            )
        },
    )
    settings = Settings(listen="127.0.0.1:0", database_url=f"sqlite:///{tmp_path / 'h.db'}")
    application = await app.open_application(settings)
    server, port, _ = await app.start_server(application, settings.listen, extra_handlers=[hidden])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            served = await served_methods(channel)
            assert path in served and path not in RULES
            answer = await call_raw(channel, served[path], b"")
            assert answer.code == grpc.StatusCode.PERMISSION_DENIED, answer
    finally:
        await server.stop(None)
        await application.close()
        del sys.modules["tests_acme_hidden_pb2"]


def test_writes_need_write_and_rollbacks_need_rollback() -> None:
    for method, rule in RULES.items():
        name = method.rsplit("/", 1)[-1]
        if name.startswith(("Rollback",)):
            assert rule.permission is Permission.ROLLBACK, method
        if rule.write:
            assert rule.permission is Permission.WRITE, method
            if name == "ApplyWrites":  # a batch: each write's own rule, in the handler
                continue
            assert rule.targets is not None, f"{method}: a write must say what it touches"

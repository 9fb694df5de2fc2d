"""Traces and logs of a real server: spans arrive at a real OTLP/gRPC receiver, named
for the RPC and the service, and a log line written during a traced call carries its
trace id; every committed write logs exactly one JSON line, with no value in it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import structlog
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from switchyard import logs
from switchyard.gen.v1 import config_pb2 as pb
from switchyard.gen.v1 import flag_pb2, flag_pb2_grpc

from .conftest import serving
from .helpers import eventually, expect_status, value


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """The collector side of OTLP/gRPC: keeps every export request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(  # noqa: N802 (the generated name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, str, str]]:
        """(service name, span name, trace id in hex) of every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found.append(
                            (attributes.get("service.name", ""), span.name, span.trace_id.hex())
                        )
        return found


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    server = grpc.aio.server()
    collector = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield collector, port
    finally:
        await server.stop(None)


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """What the server logs, as `switchyard serve --log-format json` writes it."""
    output = io.StringIO()
    structlog.configure(
        processors=logs.processors("json"),
        logger_factory=structlog.PrintLoggerFactory(file=output),
        cache_logger_on_first_use=False,
    )
    try:
        yield output
    finally:
        structlog.reset_defaults()


def lines(output: io.StringIO, event: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]
    return [line for line in parsed if line.get("event") == event]


async def test_spans_reach_the_otlp_receiver_and_logs_carry_their_trace_id(
    tmp_path: Path,
    receiver: tuple[Receiver, int],
    json_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    collector, port = receiver
    async with serving(tmp_path / "traced.db", otlp_endpoint=f"http://127.0.0.1:{port}") as server:
        tracing = server.application.tracing
        assert tracing is not None
        await server.config.GetValue(pb.GetValueRequest(key="api.timeout"))
        await expect_status(
            server.config.GetValue(pb.GetValueRequest(key="no.such.key")),
            grpc.StatusCode.NOT_FOUND,
        )
        await server.config.SetValue(
            pb.SetValueRequest(key="api.timeout", value=value(45), reason="traced")
        )
        flags = flag_pb2_grpc.FlagServiceStub(server.channel)
        await flags.EvaluateFlag(flag_pb2.EvaluateFlagRequest(flag_key="nothing"))

        async def exported() -> bool:
            # The exporter's thread calls the receiver on this loop: flush off it.
            await asyncio.to_thread(tracing.flush)
            return len(collector.spans()) >= 4

        await eventually(exported)

    spans = collector.spans()
    assert {service for service, _, _ in spans} == {"switchyard"}
    names = [name for _, name, _ in spans]
    assert names.count("/switchyard.v1.ConfigService/GetValue") == 2
    assert "/switchyard.v1.ConfigService/SetValue" in names
    assert "/switchyard.v1.FlagService/EvaluateFlag" in names
    (write_trace,) = [t for _, name, t in spans if name.endswith("/SetValue")]
    (committed,) = lines(json_logs, "committed")
    assert committed["trace_id"] == write_trace
    assert len(committed["span_id"]) == 16


async def test_one_log_line_per_committed_write_and_no_values(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    async with serving(tmp_path / "logged.db") as server:
        assert server.application.tracing is None
        written = await server.config.SetValue(
            pb.SetValueRequest(
                key="api.base_url",
                value=value("https://s3cr3t.example"),
                environment="production",
                reason="move",
                ticket="OPS-9",
            )
        )
        flags = flag_pb2_grpc.FlagServiceStub(server.channel)
        flagged = await flags.UpsertFlag(
            flag_pb2.UpsertFlagRequest(
                flag=flag_pb2.FeatureFlag(key="logged", name="Logged", is_enabled=True),
                reason="launch",
            )
        )
        await server.config.GetValue(pb.GetValueRequest(key="api.base_url"))

    committed = lines(json_logs, "committed")
    seeded = [line for line in committed if line["revision"] < written.revision]
    mine = [line for line in committed if line["revision"] >= written.revision]
    assert [line["revision"] for line in mine] == [written.revision, flagged.revision]
    first = mine[0]
    assert (first["user"], first["role"]) == ("local-operator", "site_admin")
    assert first["user_id"] and first["address"].startswith("ipv4:127.0.0.1:")
    assert (first["reason"], first["ticket"], first["changes"]) == ("move", "OPS-9", 1)
    assert first["changed"] == [
        {"kind": "config", "key": "api.base_url", "environment": "production", "action": "create"}
    ]
    assert mine[1]["changed"][0]["key"] == "logged" and mine[1]["reason"] == "launch"
    assert all(line["level"] == "info" for line in committed)
    assert "s3cr3t" not in json_logs.getvalue()
    assert len({line["revision"] for line in seeded}) == len(seeded)  # one line each

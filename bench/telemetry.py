"""`python -m bench telemetry`: what tracing costs a call, measured side by side.

Two bench servers run at once: one as shipped (tracing off, the default), one exporting
a span for every call over OTLP/gRPC to a collector in this process, which counts what
it receives and throws it away (so the figure is Switchyard's cost, not a collector's).
h2load drives each server's null RPC and cached GetValue in turn, round after round
(`bench.sidebyside`); the report is the ratios, per round and their median:

- null (traced) / null (plain) and GetValue (traced) / GetValue (plain): what a span per
  call, its export included, costs relative to the same call untraced;
- GetValue / null on each server.

The metrics (per-RPC counters and latency histograms) are on in both: they always are.
The spans received are reported, so a run in which nothing was exported shows it.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench import h2load, provenance, report
from bench.serverproc import ServerError, ServerProcess
from bench.sidebyside import Served, arguments, ratio, run_rounds
from bench.stats import median
from bench.workloads import GET_VALUE, NULL, PreflightError


class _Sink(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace collector that counts spans and keeps none."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(  # noqa: N802 (the generated name)
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        count = sum(
            len(scope.spans)
            for resource in request.resource_spans
            for scope in resource.scope_spans
        )
        with self._lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def _collector() -> Iterator[tuple[str, _Sink]]:
    sink = _Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(sink, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", sink
    finally:
        server.stop(None)


def _ratios(rps: dict[str, list[float]]) -> dict[str, list[float]]:
    return {
        "null: traced / plain": ratio(rps, "null traced", "null plain"),
        "GetValue: traced / plain": ratio(rps, "get_value traced", "get_value plain"),
        "GetValue / null, plain": ratio(rps, "get_value plain", "null plain"),
        "GetValue / null, traced": ratio(rps, "get_value traced", "null traced"),
    }


def _bench(args: argparse.Namespace, endpoint: str) -> dict[str, list[float]]:
    served = (
        Served("plain", lambda workdir: ServerProcess()),
        Served("traced", lambda workdir: ServerProcess(otlp_endpoint=endpoint)),
    )
    return run_rounds(args, served, (NULL, GET_VALUE))


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments("python -m bench telemetry", __doc__, argv)
    load_before = os.getloadavg()
    with _collector() as (endpoint, sink):
        try:
            rps = _bench(args, endpoint)
        except (h2load.LoadError, PreflightError, ServerError) as error:
            print(f"bench failed: {error}", file=sys.stderr)
            return 1
        spans = sink.spans
    print("\nrequests/s, median of rounds:")
    for name, values in rps.items():
        print(f"  {name:<20} {median(values):>9,.0f}")
    print("\nratios, median of the per-round ratios (per round):")
    for name, values in _ratios(rps).items():
        rounds = " ".join(f"{v:.2f}" for v in values)
        print(f"  {name:<26} {median(values):.2f}   ({rounds})")
    print(f"\nspans the collector received: {spans:,}")
    result = {
        "benchmark": "telemetry",
        "commit": provenance.commit(),
        "machine": provenance.machine(load_before, os.getloadavg()),
        "settings": vars(args) | {"output_dir": str(args.output_dir)},
        "rps": rps,
        "ratios": _ratios(rps),
        "spans_received": spans,
    }
    print(f"raw numbers: {report.write(result, args.output_dir, prefix='telemetry')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

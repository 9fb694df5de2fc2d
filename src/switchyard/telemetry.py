"""Traces: an OpenTelemetry span for every call Switchyard answers (its own services,
flagd's and Envoy's), exported over OTLP/gRPC. Only with an endpoint configured
(`Settings.otlp_endpoint`: SWITCHYARD_OTLP_ENDPOINT, else the standard
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT); otherwise nothing is
set up and calls do no tracing work at all.

The service name is `switchyard` unless OTEL_SERVICE_NAME (or `service.name` in
OTEL_RESOURCE_ATTRIBUTES) names another; the exporter's other standard variables
(OTEL_EXPORTER_OTLP_HEADERS, _INSECURE, _CERTIFICATE, ...) apply. Spans are named by the
full method (`/switchyard.v1.ConfigService/GetValue`), and every log line written inside
one carries its `trace_id` and `span_id`.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import grpc
import structlog
from opentelemetry import trace

from switchyard.domain.errors import FailedPrecondition

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

SERVICE_NAME = "switchyard"
TRACED_PREFIXES = ("/switchyard.", "/flagd.", "/envoy.service.ratelimit.")
"""The methods traced: health checks and reflection are not."""


def add_trace_ids(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: the current span's trace and span ids, inside a span."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


class Tracing:
    """A tracer provider exporting to one OTLP/gRPC endpoint in batches, and the server
    interceptor that starts a span per call. `shutdown` flushes what is pending."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    def interceptor(self) -> grpc.aio.ServerInterceptor:
        """The server interceptor; it goes first, so the span covers Switchyard's own."""
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        return aio_server_interceptor(  # type: ignore[no-untyped-call]
            tracer_provider=self.provider,
            filter_=lambda details: details.method.startswith(TRACED_PREFIXES),
        )

    def flush(self, timeout_seconds: float = 5.0) -> bool:
        """Exports the spans ended so far; False when that took longer than allowed."""
        return bool(self.provider.force_flush(int(timeout_seconds * 1000)))

    def shutdown(self) -> None:
        _untag_logs()
        self.provider.shutdown()


def start_tracing(endpoint: str | None) -> Tracing | None:
    """Tracing to `endpoint` (`http://host:4317`, or `https://` for TLS); None, and
    nothing set up, without one. Log lines get trace ids from now on."""
    if not endpoint:
        return None
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as error:
        # xds-protos ships stale copies of opentelemetry-proto's modules (grpc/grpc#42926).
        raise FailedPrecondition(
            f"tracing cannot start: {error}. xds-protos overwrote opentelemetry-proto's "
            "modules; reinstall them last: pip install --force-reinstall --no-deps "
            "opentelemetry-proto (make install does)"
        ) from error
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _tag_logs()
    structlog.get_logger(__name__).info("tracing", endpoint=endpoint)
    return Tracing(provider)


def _tag_logs() -> None:
    # In place, before the renderer: loggers already cached share the list.
    chain = structlog.get_config()["processors"]
    if add_trace_ids not in chain:
        chain.insert(max(0, len(chain) - 1), add_trace_ids)


def _untag_logs() -> None:
    chain = structlog.get_config()["processors"]
    if add_trace_ids in chain:
        chain.remove(add_trace_ids)


__all__ = ["SERVICE_NAME", "TRACED_PREFIXES", "Tracing", "add_trace_ids", "start_tracing"]

"""Traces (OpenTelemetry), for both services: on when the standard variable
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, off otherwise, and
then nothing of OpenTelemetry is imported.

Configured by the standard variables only: the endpoint, OTEL_EXPORTER_OTLP_HEADERS (a
collector's key), OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the sampling), and
OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES. Spans go out over OTLP/HTTP (protobuf). A
TracerProvider set before (by `opentelemetry-instrument`, or by a workflow module) is used as
it is: its owner chose its exporters.

The API's span of a request is the parent of the workflows it enqueues (the W3C trace context
goes with the workflow, in the attribute DBOS reads: OTEL_CARRIER_ATTRIBUTE); DBOS's spans of
the workflow and of each step follow in the worker, under the same trace id.
"""

import os
from collections.abc import Mapping
from typing import Any, Final

from services.contract import APP_NAME, logs

# Where DBOS looks for a workflow's parent trace context among its attributes (DBOS 3.4,
# dbos._context.OTEL_CARRIER_ATTRIBUTE): a dict of W3C trace context headers.
OTEL_CARRIER_ATTRIBUTE: Final = "dbos.otelContext"

_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
_on = False
_provider: Any = None  # the provider set here (to flush at exit), None when not ours

log = logs.get_logger(__name__)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces (an endpoint, and the SDK not turned off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name, "").strip() for name in _ENDPOINTS)


def enabled() -> bool:
    """Whether this process traces (configure() turned it on)."""
    return _on


def configure(service: str, version: str, **resource: str) -> bool:
    """Turn traces on if the environment asks for them; True when on. `service` names the
    process (`api`, `worker`) under the project's name, unless OTEL_SERVICE_NAME does."""
    global _on, _provider
    if _on or not wanted():
        return _on
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    existing = trace.get_tracer_provider()
    if isinstance(existing, trace.ProxyTracerProvider):
        attributes = {"service.version": version, **resource}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = f"{APP_NAME}-{service}"
        # The sampler is the SDK's, from OTEL_TRACES_SAMPLER (default: parent-based, always).
        provider = TracerProvider(resource=Resource.create(attributes))
        # The exporter reads the endpoint, headers, timeout and compression from OTEL_*.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _provider = provider
        log.info("tracing.enabled", exporter="otlp/http", provider="own")
    else:
        log.info("tracing.enabled", provider=type(existing).__name__)
    _on = True
    logs.add_context_source(current_ids)
    return True


def current_ids() -> dict[str, str]:
    """The trace and span ids of the current span (for log lines and exemplars), or none."""
    if not _on:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers (traceparent, tracestate), to go with a
    workflow; None when tracing is off or no span is current."""
    if not _on:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers)
    return headers or None


def flush(timeout_seconds: float = 5.0) -> None:
    """Send the spans still buffered (before an exit that skips atexit, as the worker's)."""
    if _provider is not None:
        _provider.force_flush(int(timeout_seconds * 1000))

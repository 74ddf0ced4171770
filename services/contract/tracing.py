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
import threading
from collections.abc import Mapping
from typing import Final

from services.contract import APP_NAME, logs

# Where DBOS looks for a workflow's parent trace context among its attributes (DBOS 3.4,
# dbos._context.OTEL_CARRIER_ATTRIBUTE): a dict of W3C trace context headers.
OTEL_CARRIER_ATTRIBUTE: Final = "dbos.otelContext"

_ENDPOINTS: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# How long an exit waits for the last spans to go out.
FLUSH_SECONDS: Final = 2.0
_on = False

log = logs.get_logger(__name__)


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment asks for traces: an endpoint, the SDK not turned off, and no
    exporter but OTLP asked for (the one there is here)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if not any(environ.get(name, "").strip() for name in _ENDPOINTS):
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter != "otlp":
        if exporter != "none":
            log.warning("tracing.exporter_unsupported", exporter=exporter, supported="otlp")
        return False
    return True


def enabled() -> bool:
    """Whether this process traces (configure() turned it on)."""
    return _on


def configure(service: str, version: str, **resource: str) -> bool:
    """Turn traces on if the environment asks for them; True when on. `service` names the
    process (`api`, `worker`) under the project's name, unless OTEL_SERVICE_NAME does."""
    global _on
    if _on or not wanted():
        return _on
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
    )
    if protocol.strip() != "http/protobuf":
        log.warning("tracing.protocol_unsupported", protocol=protocol, used="http/protobuf")
    existing = trace.get_tracer_provider()
    if isinstance(existing, trace.ProxyTracerProvider):
        # Defaults only: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES say otherwise.
        given = _resource_keys(os.environ)
        defaults = {
            "service.name": f"{APP_NAME}-{service}",
            "service.version": version,
            **resource,
        }
        attributes = {k: v for k, v in defaults.items() if k not in given}
        # The sampler is the SDK's, from OTEL_TRACES_SAMPLER (default: parent-based, always).
        provider = TracerProvider(resource=Resource.create(attributes))
        # The exporter reads the endpoint, headers, timeout and compression from OTEL_*.
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        log.info("tracing.enabled", exporter="otlp/http", provider="own")
    else:
        log.info("tracing.enabled", provider=type(existing).__name__)
    _on = True
    logs.add_context_source(current_ids)
    return True


def _resource_keys(environ: Mapping[str, str]) -> set[str]:
    keys = {
        pair.split("=", 1)[0].strip()
        for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
        if "=" in pair
    }
    if environ.get("OTEL_SERVICE_NAME", "").strip():
        keys.add("service.name")
    return keys


def current_ids() -> dict[str, str]:
    """The trace and span ids of the current span (for log lines and exemplars), or none when
    no span is current or its trace is not sampled (it goes nowhere: nothing to link to)."""
    if not _on:
        return {}
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def carrier() -> dict[str, str] | None:
    """The current trace context as a W3C `traceparent`, to go with a workflow; None when
    tracing is off or no span is current. Not the caller's `tracestate`: up to kilobytes of
    the caller's, which would be stored with every workflow of a batch."""
    if not _on:
        return None
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    headers: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(headers)
    parent = headers.get("traceparent")
    return None if parent is None else {"traceparent": parent}


def flush(timeout_seconds: float = FLUSH_SECONDS) -> None:
    """Send the spans still buffered, waiting `timeout_seconds` at most (the SDK's own flush
    takes no deadline: each batch may wait the exporter's timeout). Called where an exit
    would drop them: a uvicorn process ends by its signal, a worker by os._exit."""
    if not _on:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    force_flush = getattr(provider, "force_flush", None)
    if force_flush is None:
        return
    sender = threading.Thread(target=force_flush, name="trace-flush", daemon=True)
    sender.start()
    sender.join(timeout_seconds)
    if sender.is_alive():
        log.warning("tracing.flush_incomplete", timeout_seconds=timeout_seconds)

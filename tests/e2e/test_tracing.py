"""Traces from the HTTP request to every step: one trace id from the caller's `traceparent`
through the API's span of `POST /workflows` to DBOS's spans of the workflow and its steps in
the worker, sent over OTLP/HTTP to a receiver the test runs; the worker's histograms carry the
trace as exemplars, and log lines its ids."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from services.contract.tracing import FLUSH_SECONDS
from tests.conftest import NewDatabase
from tests.support.otlp import OtlpReceiver, Span
from tests.support.polling import wait_for
from tests.support.processes import Api, start_worker, wait_worker_ready

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
FANOUT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SERVER, INTERNAL = 2, 1  # OTLP span kinds


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    yield receiver
    receiver.stop()


def test_one_trace_from_the_request_to_the_last_step(
    receiver: OtlpReceiver, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("postgres")
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-collector-key=k-123",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # milliseconds: spans go out at once
        "LOG_FORMAT": "json",
    }
    worker = start_worker(url, tmp_path, **env)
    api = Api(url, tmp_path, **env)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        answer = api.http.post(
            "/workflows",
            json={"num_steps": 3, "step_seconds": 0},
            headers={
                "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01",
                "tracestate": "vendor=" + "x" * 200,
            },
        )
        assert answer.status_code == 202, answer.text
        workflow_id = answer.json()["workflow_id"]
        api.wait_status(workflow_id, "SUCCESS")
        fanned = api.http.post(
            "/workflows",
            json={"workflow": "fanout", "input": {"items": 2, "item_seconds": 0}},
            headers={"traceparent": f"00-{FANOUT_TRACE}-{CALLER_SPAN}-01"},
        )
        assert fanned.status_code == 202, fanned.text
        fanned_id = fanned.json()["workflow_id"]
        api.wait_status(fanned_id, "SUCCESS")
        metrics = httpx.get(
            f"{worker.probe_url}/metrics",
            headers={"Accept": "application/openmetrics-text; version=1.0.0"},
        ).text

        def traced() -> list[Span] | None:
            spans = [s for s in receiver.snapshot() if s.trace_id == CALLER_TRACE]
            steps = [s for s in spans if s.attributes.get("operationType") == "step"]
            return spans if len(steps) == 3 else None

        spans = wait_for(traced, timeout=30, interval=0.1, what="the workflow's spans")

        def fanned_out() -> list[Span] | None:
            spans = [s for s in receiver.snapshot() if s.trace_id == FANOUT_TRACE]
            runs = [s for s in spans if s.attributes.get("operationType") == "workflow"]
            return spans if len(runs) == 3 else None

        fan_spans = wait_for(fanned_out, timeout=30, interval=0.1, what="the fan-out's spans")
    finally:
        api.stop()
        worker.stop()

    (request,) = [s for s in spans if s.kind == SERVER]
    assert request.name == "POST /workflows" and request.parent_span_id == CALLER_SPAN
    assert request.attributes["http.route"] == "/workflows"
    assert request.attributes["http.response.status_code"] == 202
    assert request.resource["service.name"] == "dbos-queue-worker-api"
    assert request.resource["service.version"] == "1"
    # The workflow's span is the request's child, in the worker; each step is the workflow's.
    (run,) = [s for s in spans if s.attributes.get("operationType") == "workflow"]
    assert run.parent_span_id == request.span_id
    assert run.attributes["operationUUID"] == workflow_id
    assert run.resource["service.name"] == "dbos-queue-worker-worker"
    assert run.resource["service.instance.id"] == worker.executor_id
    steps = [s for s in spans if s.attributes.get("operationType") == "step"]
    assert {s.parent_span_id for s in steps} == {run.span_id}
    # The children a workflow enqueues continue its trace, under its span.
    runs = [s for s in fan_spans if s.attributes.get("operationType") == "workflow"]
    (parent,) = [s for s in runs if s.attributes["operationUUID"] == fanned_id]
    children = [s for s in runs if s is not parent]
    assert len(children) == 2 and {c.parent_span_id for c in children} == {parent.span_id}
    # The workflow keeps the request's traceparent only (not the caller's tracestate).
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        attributes = conn.execute(
            sa.text("SELECT attributes FROM dbos.workflow_status WHERE workflow_uuid = :id"),
            {"id": workflow_id},
        ).scalar_one()
    engine.dispose()
    assert attributes["dbos.otelContext"] == {
        "traceparent": f"00-{CALLER_TRACE}-{request.span_id}-01"
    }
    # The collector's key went with every export.
    assert {h.get("x-collector-key") for h in receiver.requests} == {"k-123"}
    # Probes leave no traces.
    assert not [s for s in receiver.snapshot() if s.name.endswith(("/healthz", "/readyz"))]

    # The worker's histograms name the trace of what they measured (OpenMetrics exemplars).
    exemplar = f'trace_id="{CALLER_TRACE}"'
    for histogram in ("queue_worker_workflow_duration_seconds", "queue_worker_queue_wait_seconds"):
        assert [
            line for line in metrics.splitlines() if line.startswith(histogram) and exemplar in line
        ], histogram
    # ... and the log lines of the request and of the workflow name it too.
    api_lines = [json.loads(line) for line in api.service.log().splitlines()]
    worker_lines = [json.loads(line) for line in worker.log().splitlines()]
    (access, _) = [
        r for r in api_lines if r.get("event") == "http.request" and r["method"] == "POST"
    ]
    (ended,) = [
        r
        for r in worker_lines
        if r.get("event") == "workflow.ended" and r["workflow_id"] == workflow_id
    ]
    assert access["trace_id"] == ended["trace_id"] == CALLER_TRACE
    assert ended["span_id"] == run.span_id
    # No warning of DBOS's about a logger provider: logs go to the stream.
    assert not [r for r in worker_lines if r["level"] in ("warning", "error")], worker_lines


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )


def test_without_an_endpoint_nothing_of_opentelemetry_is_loaded() -> None:
    done = _python(
        "import sys; from services.contract import tracing; "
        "from services.api.app import create_app; from services.worker import runner; "
        "assert not tracing.configure('api', '1'); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_tracer_provider_set_before_is_kept(receiver: OtlpReceiver) -> None:
    done = _python(
        "from opentelemetry import trace; from opentelemetry.sdk.trace import TracerProvider; "
        "mine = TracerProvider(); trace.set_tracer_provider(mine); "
        "from services.contract import tracing; "
        "from opentelemetry.sdk.trace.export import BatchSpanProcessor; "
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import "
        "InMemorySpanExporter; "
        "sent = InMemorySpanExporter(); mine.add_span_processor(BatchSpanProcessor(sent, "
        "schedule_delay_millis=60000)); "
        "assert tracing.configure('worker', '1'); "
        "assert trace.get_tracer_provider() is mine; "
        "trace.get_tracer('t').start_span('s').end(); tracing.flush(); "
        "assert len(sent.get_finished_spans()) == 1; print('kept')",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "kept"


def test_the_standard_variables_turn_traces_off_and_sample_them() -> None:
    code = "from services.contract import tracing; print(tracing.configure('api', '1'))"
    endpoint = "http://127.0.0.1:9"
    assert _python(code, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint).stdout.strip() == "True"
    off = _python(code, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_SDK_DISABLED="true")
    assert off.stdout.strip() == "False"
    none = _python(code, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_TRACES_EXPORTER="none")
    assert none.stdout.strip() == "False"
    sampled = _python(
        "from opentelemetry import trace; from services.contract import tracing; "
        "tracing.configure('api', '1'); "
        "print(trace.get_tracer_provider().sampler.get_description())",
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=endpoint,
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0.25",
    )
    assert "0.25" in sampled.stdout, sampled.stderr


def test_spans_still_buffered_at_a_stop_are_sent(
    receiver: OtlpReceiver, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # Batches go out once a minute here: only the flush at the stop can send them.
    url = new_migrated_database("sqlite")
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "60000"}
    worker = start_worker(url, tmp_path, **env)
    api = Api(url, tmp_path, **env)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=1, step_seconds=0)
        api.wait_status(workflow_id, "SUCCESS")
        assert receiver.snapshot() == []
    finally:
        api.stop()
        worker.stop()
    services = {s.service for s in receiver.snapshot()}
    assert services == {"dbos-queue-worker-api", "dbos-queue-worker-worker"}, services


def test_a_collector_that_never_answers_delays_a_stop_by_a_bounded_time(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # It takes connections and never answers: the exporter would wait its own timeout for
    # each batch, after the worker has marked itself stopped.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        url = new_migrated_database("sqlite")
        worker = start_worker(
            url,
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="60000",
            WORKER_DRAIN_TIMEOUT_SECONDS="2",
        )
        api = Api(url, tmp_path)
        try:
            wait_worker_ready(worker)
            api.wait_ready()
            api.wait_status(api.enqueue(num_steps=1, step_seconds=0), "SUCCESS")
        finally:
            api.stop()
        worker.send(signal.SIGTERM)
        started = time.monotonic()
        worker.wait(timeout=60)
        took = time.monotonic() - started
        worker.stop()
    # The drain (nothing runs) and a flush of at most FLUSH_SECONDS.
    assert took < 2 + FLUSH_SECONDS + 3, took
    assert "tracing.flush_incomplete" in worker.log()


def test_the_resource_and_the_sampling_are_the_environments_to_set() -> None:
    described = _python(
        "from opentelemetry import trace\n"
        "from opentelemetry.trace import use_span\n"
        "from services.contract import tracing\n"
        "tracing.configure('api', '1')\n"
        "print(dict(trace.get_tracer_provider().resource.attributes))\n"
        "with use_span(trace.get_tracer('t').start_span('s')):\n"
        "    print(tracing.current_ids())\n",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_RESOURCE_ATTRIBUTES="service.name=billing,service.version=9,team=payments",
        OTEL_TRACES_SAMPLER="always_off",
    )
    assert described.returncode == 0, described.stderr
    resource, ids = described.stdout.strip().splitlines()
    assert "'service.name': 'billing'" in resource and "'service.version': '9'" in resource
    assert "'team': 'payments'" in resource
    # An unsampled trace goes nowhere: no log line or exemplar names it.
    assert ids == "{}"
    console = _python(
        "from services.contract import tracing; print(tracing.configure('api', '1'))",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_EXPORTER="console",
    )
    assert console.stdout.strip() == "False" and "tracing.exporter_unsupported" in console.stderr

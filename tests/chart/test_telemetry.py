"""The chart's telemetry values: JSON logs by default, and traces to a collector when asked."""

import json
from typing import Any

import helm_python
import pytest

from tests.support.chart import DASHBOARD, REQUIRED_VALUES, render

API, WORKER = "-api", "-worker"


def _containers(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The API's and the worker's container, by which."""
    deployments = [o for o in render({**REQUIRED_VALUES, **values}) if o["kind"] == "Deployment"]
    found = {}
    for deployment in deployments:
        for suffix in (API, WORKER):
            if deployment["metadata"]["name"].endswith(suffix):
                found[suffix] = deployment["spec"]["template"]["spec"]["containers"][0]
    assert set(found) == {API, WORKER}, [d["metadata"]["name"] for d in deployments]
    return found


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_both_services_log_json_and_send_no_traces_by_default() -> None:
    for container in _containers({}).values():
        env = _env(container)
        assert env["LOG_FORMAT"] == "json"
        assert not [name for name in env if name.startswith("OTEL_")]


def test_traces_go_to_the_collector_with_its_key_from_a_secret_and_the_ratio() -> None:
    tracing = {
        "endpoint": "http://otel-collector.monitoring:4318",
        "headersSecret": {"name": "otel-key", "key": "headers"},
        "samplingRatio": 0.1,
    }
    for container in _containers({"tracing": tracing, "logFormat": "text"}).values():
        env = _env(container)
        assert env["LOG_FORMAT"] == "text"
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
        assert env["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
        assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
        # The key is referenced, never inlined.
        assert env["OTEL_EXPORTER_OTLP_HEADERS"] == {
            "secretKeyRef": {"name": "otel-key", "key": "headers"}
        }


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        ({"endpoint": "otel-collector:4318"}, "/tracing/endpoint"),
        ({"endpoint": "http://c:4318", "samplingRatio": 1.5}, "/tracing/samplingRatio"),
        ({"endpoint": "http://c:4318", "headers": "k=v"}, "headers"),
    ],
)
def test_bad_tracing_values_fail_naming_the_key(tracing: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmError) as failure:
        render({**REQUIRED_VALUES, "tracing": tracing})
    assert message in str(failure.value)


def test_a_log_format_the_services_do_not_know_is_refused() -> None:
    with pytest.raises(helm_python.HelmError) as failure:
        render({**REQUIRED_VALUES, "logFormat": "yaml"})
    assert "logFormat" in str(failure.value)


def test_the_dashboard_shows_the_traces_of_slow_workflows_as_exemplars() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    shown = {
        histogram
        for panel in panels
        for target in panel.get("targets", [])
        if target.get("exemplar")
        for histogram in (
            "queue_worker_workflow_duration_seconds",
            "queue_worker_queue_wait_seconds",
        )
        if histogram in target["expr"]
    }
    assert shown == {"queue_worker_workflow_duration_seconds", "queue_worker_queue_wait_seconds"}


def test_a_secret_named_by_digits_stays_a_name() -> None:
    tracing = {"endpoint": "http://c:4318", "headersSecret": {"name": "0123", "key": "1"}}
    for container in _containers({"tracing": tracing}).values():
        reference = _env(container)["OTEL_EXPORTER_OTLP_HEADERS"]["secretKeyRef"]
        assert reference == {"name": "0123", "key": "1"}

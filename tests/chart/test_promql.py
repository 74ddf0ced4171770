"""Every PromQL expression the chart ships, parsed by promtool; the alerts unit-tested by it."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from services import contract
from tests.support.chart import (
    NAMESPACE,
    RELEASE,
    RELEASE_LABEL,
    REQUIRED_VALUES,
    adapter_query,
    alert_rules,
    dashboard_exprs,
    dashboard_variables,
    find,
    render,
    rules_file,
    substitute,
)
from tests.support.tools import require_tool

DEFAULTS = REQUIRED_VALUES
HPA = "demo-dbos-queue-worker-worker"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool")
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.requires_tool("promtool")
def test_alert_rules_pass_promtool(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(rules_file(render(DEFAULTS)))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 6 rules found" in checked.stdout


@pytest.mark.requires_tool("promtool")
def test_dashboard_adapter_and_keda_queries_parse(tmp_path: Path) -> None:
    keda = find(
        render({**DEFAULTS, "autoscaling": {"enabled": False}, "keda": {"enabled": True}}),
        "ScaledObject",
    )
    exprs = [substitute(e, dashboard_variables(NAMESPACE)) for e in dashboard_exprs()]
    exprs += [adapter_query(NAMESPACE, contract.QUEUE_NAME)]
    exprs += [keda["spec"]["triggers"][0]["metadata"]["query"]]
    # promtool parses expressions in rules files: one recording rule per expression.
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "exprs", "rules": rules}]}))
    checked = _promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_metric_the_chart_names_is_one_the_services_export() -> None:
    source = "\n".join(p.read_text() for p in Path("services").rglob("*.py"))
    objects = render(DEFAULTS)
    texts = dashboard_exprs() + [r["expr"] for r in alert_rules(objects)]
    # Every name of the prefix, but the release label the ServiceMonitors add.
    named = {m for t in texts for m in re.findall(r"\bqueue_worker_\w+", t)} - {RELEASE_LABEL}
    suffixes = ("_bucket", "_count", "_sum", "_total")
    for metric in sorted(named):
        base = next((metric.removesuffix(s) for s in suffixes if metric.endswith(s)), metric)
        short = base.removeprefix(contract.METRIC_PREFIX)
        assert f'"{base}"' in source or f'"{short}"' in source, f"{metric} is not exported"


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    # The services' samples carry their release (the chart's ServiceMonitors add it).
    scope = {"namespace": NAMESPACE}
    if name.startswith(contract.METRIC_PREFIX):
        scope[RELEASE_LABEL] = RELEASE
    selector = ",".join(f'{k}="{v}"' for k, v in {**scope, **labels}.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def _expected(
    objects: list[dict[str, object]], alert: str, value: str, **labels: str
) -> dict[str, object]:
    """The alert as promtool should report it: labels, and annotations with values filled in."""
    (rule,) = [r for r in alert_rules(objects) if r["alert"] == alert]
    all_labels = {"namespace": NAMESPACE, **rule["labels"], **labels}

    def fill(text: str) -> str:
        text = re.sub(r"\{\{ \$value[^}]*\}\}", value, text)
        return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: all_labels[m.group(1)], text)

    annotations = {k: fill(v) for k, v in rule["annotations"].items()}
    return {"exp_labels": all_labels, "exp_annotations": annotations}


@pytest.mark.requires_tool("promtool")
def test_alerts_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    objects = render(DEFAULTS)
    (tmp_path / "rules.yaml").write_text(rules_file(objects))
    q = {"queue": contract.QUEUE_NAME}
    hpa = {"horizontalpodautoscaler": HPA}
    tests = [
        {  # the oldest workflow waits 10 minutes and more
            "interval": "1m",
            "input_series": [
                _series("queue_worker_queue_oldest_enqueued_age_seconds", "0+60x20", **q),
                _series("queue_worker_queue_load", "1x20", **q),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "4m",
                    "alertname": "QueueWorkerOldestWorkflowTooOld",
                    "exp_alerts": [],
                },
                {
                    "eval_time": "12m",
                    "alertname": "QueueWorkerOldestWorkflowTooOld",
                    "exp_alerts": [
                        _expected(objects, "QueueWorkerOldestWorkflowTooOld", "12m 0s", **q)
                    ],
                },
            ],
        },
        {  # the load metric stops after 3 minutes (stale 5 minutes later): autoscaling is blind
            "interval": "1m",
            "input_series": [
                _series("queue_worker_queue_load", "1x3 _x30", **q),
                _series("queue_worker_queue_load", "1x3 _x30", application_version="1", **q),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "QueueWorkerQueueMetricAbsent", "exp_alerts": []},
                {
                    "eval_time": "16m",
                    "alertname": "QueueWorkerQueueMetricAbsent",
                    "exp_alerts": [
                        _expected(
                            objects,
                            "QueueWorkerQueueMetricAbsent",
                            "1",
                            **{RELEASE_LABEL: RELEASE, "application_version": "1"},
                        )
                    ],
                },
            ],
        },
        {  # an API that reports the total but not version 1's share (older than the chart)
            "interval": "1m",
            "input_series": [_series("queue_worker_queue_load", "1x30", **q)],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "QueueWorkerQueueMetricAbsent",
                    "exp_alerts": [
                        _expected(
                            objects,
                            "QueueWorkerQueueMetricAbsent",
                            "1",
                            **{RELEASE_LABEL: RELEASE, "application_version": "1"},
                        )
                    ],
                },
            ],
        },
        {  # 10% of executions fail, then 1%
            "interval": "1m",
            "input_series": [
                _series(
                    "queue_worker_workflows_completed_total", "0+90x30", outcome="success", **q
                ),
                _series("queue_worker_workflows_completed_total", "0+10x30", outcome="error", **q),
                _series("queue_worker_queue_load", "1x30", **q),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "25m",
                    "alertname": "QueueWorkerFailureRatioHigh",
                    "exp_alerts": [_expected(objects, "QueueWorkerFailureRatioHigh", "10%")],
                },
            ],
        },
        {  # another release in the namespace: its queue waits, its load stops; ours is fine
            "interval": "1m",
            "input_series": [
                _series(
                    "queue_worker_queue_oldest_enqueued_age_seconds",
                    "0+600x20",
                    **{RELEASE_LABEL: "other"},
                    **q,
                ),
                _series("queue_worker_queue_load", "1x20", **q),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "QueueWorkerOldestWorkflowTooOld",
                    "exp_alerts": [],
                },
            ],
        },
        {  # orphaned work stays for 15 minutes; a blip of 2 minutes does not alert
            "interval": "1m",
            "input_series": [
                _series("queue_worker_orphaned_workflows", "0 3 3 0x20", queue="blip"),
                _series("queue_worker_orphaned_workflows", "5x20", **q),
                _series("queue_worker_queue_load", "1x20", **q),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "15m",
                    "alertname": "QueueWorkerOrphanedWorkflows",
                    "exp_alerts": [_expected(objects, "QueueWorkerOrphanedWorkflows", "5", **q)],
                },
            ],
        },
        {  # at 10 of 10 workers the queue needs 25 of this version: more than the maximum
            "interval": "1m",
            "input_series": [
                _series("kube_horizontalpodautoscaler_status_current_replicas", "10x30", **hpa),
                _series("kube_horizontalpodautoscaler_spec_max_replicas", "10x30", **hpa),
                _series("queue_worker_queue_load", "25x30", **q),
                _series("queue_worker_queue_load", "25x30", application_version="1", **q),
            ],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "QueueWorkerAtMaxReplicas", "exp_alerts": []},
                {
                    "eval_time": "20m",
                    "alertname": "QueueWorkerAtMaxReplicas",
                    "exp_alerts": [_expected(objects, "QueueWorkerAtMaxReplicas", "10", **hpa)],
                },
            ],
        },
        {  # at max replicas but this version's share fits (the rest is another version's)
            "interval": "1m",
            "input_series": [
                _series("kube_horizontalpodautoscaler_status_current_replicas", "10x30", **hpa),
                _series("kube_horizontalpodautoscaler_spec_max_replicas", "10x30", **hpa),
                _series("queue_worker_queue_load", "27x30", **q),
                _series("queue_worker_queue_load", "7x30", application_version="1", **q),
                _series("queue_worker_queue_load", "20x30", application_version="0", **q),
            ],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": "QueueWorkerAtMaxReplicas", "exp_alerts": []},
            ],
        },
    ]
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec))
    tested = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("alert", ["QueueWorkerAtMaxReplicas"])
def test_keda_alerts_watch_the_hpa_keda_makes(alert: str) -> None:
    # Without taking over the chart's HPA, KEDA names its own keda-hpa-<ScaledObject>.
    keda = {"enabled": True, "transferHpaOwnership": False}
    objects = render({**DEFAULTS, "autoscaling": {"enabled": False}, "keda": keda})
    (rule,) = [r for r in alert_rules(objects) if r["alert"] == alert]
    assert f'horizontalpodautoscaler="keda-hpa-{HPA}"' in rule["expr"]


@pytest.mark.requires_tool("promtool")
def test_at_max_replicas_counts_workers_needed_at_the_configured_target(tmp_path: Path) -> None:
    # Target 0.5 load per worker: a load of 7 needs 14 workers, more than the maximum of 10.
    objects = render({**DEFAULTS, "autoscaling": {"targetLoadPerWorker": "0.5"}})
    (tmp_path / "rules.yaml").write_text(rules_file(objects))
    hpa = {"horizontalpodautoscaler": HPA}
    test = {
        "interval": "1m",
        "input_series": [
            _series("kube_horizontalpodautoscaler_status_current_replicas", "10x30", **hpa),
            _series("kube_horizontalpodautoscaler_spec_max_replicas", "10x30", **hpa),
            _series(
                "queue_worker_queue_load",
                "7x30",
                queue=contract.QUEUE_NAME,
                application_version="1",
            ),
        ],
        "alert_rule_test": [
            {
                "eval_time": "20m",
                "alertname": "QueueWorkerAtMaxReplicas",
                "exp_alerts": [_expected(objects, "QueueWorkerAtMaxReplicas", "14", **hpa)],
            }
        ],
    }
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [test]}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec))
    tested = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.requires_tool("promtool")
def test_an_earlier_version_is_said_drained_once_its_work_is_done(tmp_path: Path) -> None:
    values = {
        **REQUIRED_VALUES,
        "database": {"existingSecret": "db", "maxConnections": 300},
        "applicationVersion": "2",
        "previousVersions": [{"version": "1", "image": {"tag": "1.0"}}],
    }
    objects = render(values)
    (tmp_path / "rules.yaml").write_text(rules_file(objects))
    q = {"queue": contract.QUEUE_NAME}
    v1 = {"application_version": "1"}
    # The alert names the release itself (its value is a sum, or no series at all).
    drained = [_expected(objects, "QueueWorkerVersionDrained", "0", **v1)]
    assert drained[0]["exp_labels"][RELEASE_LABEL] == RELEASE  # type: ignore[index]
    tests = [
        {  # version 1's last workflow runs for 10 minutes, then it has none (its workers live on)
            "interval": "1m",
            "input_series": [
                _series("queue_worker_version_workflows", "3x10 0x30", status="enqueued", **v1),
                _series("queue_worker_version_workflows", "0x40", status="pending", **v1),
                _series("queue_worker_version_workflows", "0x40", status="delayed", **v1),
                _series("queue_worker_queue_load", "1x40", **q),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "QueueWorkerVersionDrained", "exp_alerts": []},
                {
                    "eval_time": "27m",
                    "alertname": "QueueWorkerVersionDrained",
                    "exp_alerts": drained,
                },
            ],
        },
        {  # no series of version 1 at all (no work, no worker): drained, while the API reports
            "interval": "1m",
            "input_series": [_series("queue_worker_queue_load", "1x40", **q)],
            "alert_rule_test": [
                {
                    "eval_time": "20m",
                    "alertname": "QueueWorkerVersionDrained",
                    "exp_alerts": drained,
                },
            ],
        },
        {  # the API's metrics are gone (database down): nothing is said about version 1
            "interval": "1m",
            "input_series": [_series("queue_worker_queue_load", "1x2 _x40", **q)],
            "alert_rule_test": [
                {"eval_time": "30m", "alertname": "QueueWorkerVersionDrained", "exp_alerts": []},
            ],
        },
    ]
    spec = {"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(spec))
    tested = _promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr

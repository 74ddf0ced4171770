"""A real Prometheus scrapes the real API and worker: every dashboard, alert and autoscaling
query of the chart evaluates against what the services really export."""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dbos import DBOSClient

from services import contract
from tests.conftest import NewDatabase
from tests.support.chart import (
    RELEASE,
    RELEASE_LABEL,
    REQUIRED_VALUES,
    adapter_query,
    alert_rules,
    dashboard_exprs,
    dashboard_variables,
    render,
    rules_file,
    substitute,
)
from tests.support.polling import wait_for
from tests.support.processes import Api, WorkerProcess, start_worker, wait_worker_ready
from tests.support.prometheus import Prometheus

pytestmark = [pytest.mark.postgres, pytest.mark.requires_tool("prometheus")]
NAMESPACE = "ci"
CONCURRENCY = 10
# Series of kube-state-metrics: only a cluster has them. Their expressions are parsed by
# promtool in tests/chart; here they are left out.
NEEDS_A_CLUSTER = re.compile(r"\bkube_")


@pytest.fixture(scope="module")
def system(
    new_migrated_database: NewDatabase, workdir: Path
) -> Iterator[tuple[str, Api, WorkerProcess]]:
    url = new_migrated_database("postgres")
    tmp_path = workdir
    worker = start_worker(url, tmp_path, WORKER_CONCURRENCY=str(CONCURRENCY))
    api = Api(url, tmp_path)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        # One workflow of a version no worker runs, before the first scrape: it stays queued,
        # so age, stranded work and load have values.
        client = DBOSClient(system_database_url=url)
        client.enqueue(
            {
                "queue_name": contract.QUEUE_NAME,
                "workflow_name": contract.WORKFLOW_NAME,
                "app_version": "2",
            },
            1,
            0.0,
        )
        client.destroy()
        yield url, api, worker
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(scope="module")
def prometheus(system: tuple[str, Api, WorkerProcess], workdir: Path) -> Iterator[Prometheus]:
    _, api, worker = system
    tmp_path = workdir
    objects = render(REQUIRED_VALUES)
    (tmp_path / "rules.yaml").write_text(rules_file(objects).replace('"jobs"', f'"{NAMESPACE}"'))
    # What the chart's ServiceMonitors add to every sample in a cluster.
    labels = {"namespace": NAMESPACE, RELEASE_LABEL: RELEASE}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp_path / "rules.yaml")],
        "scrape_configs": [
            {
                "job_name": "api",
                "static_configs": [
                    {"targets": [api.url.removeprefix("http://")], "labels": labels}
                ],
            },
            {
                "job_name": "worker",
                "static_configs": [
                    {"targets": [worker.probe_url.removeprefix("http://")], "labels": labels}
                ],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = Prometheus(tmp_path / "prometheus.yml", tmp_path)
    try:
        server.wait_ready()
        wait_for(
            lambda: len(server.query("up == 1")) == 2,
            timeout=60,
            interval=0.5,
            what="Prometheus scraping API and worker",
        )
        yield server
    finally:
        server.stop()


def test_every_query_returns_data_from_the_real_services(
    system: tuple[str, Api, WorkerProcess], prometheus: Prometheus
) -> None:
    _, api, _ = system
    done = [api.enqueue(num_steps=2, step_seconds=0.05) for _ in range(5)]
    for workflow_id in done:
        api.wait_status(workflow_id, "SUCCESS")
    api.http.get("/workflows")

    exprs = [substitute(e, dashboard_variables(NAMESPACE)) for e in dashboard_exprs()]
    local = [e for e in exprs if not NEEDS_A_CLUSTER.search(e)]
    assert len(local) >= len(exprs) - 3
    pending = set(local)

    def all_answered() -> bool:
        pending.difference_update({e for e in pending if prometheus.query(e)})
        return not pending

    wait_for(all_answered, timeout=90, interval=0.5, what=f"data for every query: {pending}")

    # The autoscaling signal, as the HPA (through the adapter) and KEDA read it: each fleet its
    # own version's share. The queued workflow is of version 2; the workers run version 1.
    share = {"1": 0.0, "2": 1 / CONCURRENCY, "7": 0.0}  # one queued, nothing running
    values = {
        **REQUIRED_VALUES,
        "database": {"existingSecret": "db", "maxConnections": 400},
        "previousVersions": [{"version": v, "image": {"tag": v}} for v in ("2", "7")],
    }
    hpas = [o for o in render(values) if o["kind"] == "HorizontalPodAutoscaler"]
    assert len(hpas) == 3

    def read(query: str) -> float | None:
        result = prometheus.query(query.replace('"jobs"', f'"{NAMESPACE}"'))
        return float(result[0]["value"][1]) if result else None

    for hpa in hpas:
        selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]
        version = selector["matchLabels"]["application_version"]
        query = adapter_query(
            NAMESPACE, selector["matchExpressions"][0]["values"], selector["matchLabels"]
        )
        if version == "7":
            # No worker, no work, not the API's: the adapter finds no series and the HPA
            # holds; an earlier version's fleet under the HPA keeps one live worker.
            assert read(query) is None
        else:
            wait_for(
                lambda q=query, v=version: read(q) == share[v],  # type: ignore[misc]
                timeout=30,
                interval=0.5,
                what=f"the adapter to read version {version}'s load",
            )
    keda = render({**values, "autoscaling": {"enabled": False}, "keda": {"enabled": True}})
    for scaled in (o for o in keda if o["kind"] == "ScaledObject"):
        query = scaled["spec"]["triggers"][0]["metadata"]["query"]
        version = re.search(r'application_version="(\w+)"', query)
        assert version is not None
        # KEDA reads 0, not nothing, for version 7: its fleet stays at zero.
        assert read(query) == share[version.group(1)], query


def test_alert_rules_load_and_evaluate_in_prometheus(prometheus: Prometheus) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = prometheus.get("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return (
            rules
            if rules
            and all(
                r.get("lastEvaluation", "").startswith("2")
                and not r["lastEvaluation"].startswith("0001")
                for r in rules
            )
            else None
        )

    rules = wait_for(evaluated, timeout=30, interval=0.5, what="every rule evaluated")
    expected = {r["alert"] for r in alert_rules(render(REQUIRED_VALUES))}
    assert {r["name"] for r in rules} == expected
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    firing = {r["name"] for r in rules if r["state"] == "firing"}
    assert "QueueWorkerQueueMetricAbsent" not in firing  # the load metric is there

"""The autoscaling rehearsal, small and fast: the chart's HPA, read through the adapter's query
from a real Prometheus, scales real workers out on a burst and back in after it, and holds
while the load cannot be read."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from benchmarks.rehearsal import config as chart_config
from benchmarks.rehearsal import pools, versions
from benchmarks.rehearsal.scenarios import Workload, lull, outage
from benchmarks.rehearsal.stage import Stage
from services import contract
from services.contract import registry as workflow_registry
from tests.conftest import NewDatabase
from tests.support import second_workflow
from tests.support.metrics import sample
from tests.support.processes import REPO_ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.requires_tool("prometheus")]

TIME_SCALE = 20.0
START_DELAY = 10.0 / TIME_SCALE
# Three workers at most keeps the machine's two cores for the rest.
VALUES = {"autoscaling": {"maxReplicas": 3}}


@pytest.fixture
def stage(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Stage]:
    config = chart_config.load("hpa", VALUES).scaled(TIME_SCALE)
    stage = Stage(config, new_migrated_database("postgres"), tmp_path, START_DELAY)
    try:
        stage.open()
        yield stage
    finally:
        stage.close()


def test_a_burst_scales_out_drains_and_scales_back_in(stage: Stage) -> None:
    minimum = stage.config.autoscaler.min_replicas
    work = Workload(workflows=150, num_steps=4, step_seconds=2.0 / TIME_SCALE)

    figures = lull(stage, work, START_DELAY)

    assert figures["max_ready_replicas"] > minimum
    assert figures["workflows_succeeded"] == figures["workflows_enqueued"] == 150
    assert figures["workflows_lost"] == 0
    assert stage.deployment.replicas == stage.deployment.ready_replicas() == minimum
    assert figures["direction_reversals"] == 0


def test_the_workers_hold_while_the_load_cannot_be_read(stage: Stage) -> None:
    work = Workload(workflows=150, num_steps=4, step_seconds=2.0 / TIME_SCALE)

    figures = outage(stage, work, START_DELAY)

    assert stage.timeline.outages, "no outage happened"
    assert figures["outage_replica_changes"] == 0
    assert figures["workflows_lost"] == 0
    assert any(load is None for load in (s.load for s in stage.timeline.samples))


def test_keda_wakes_a_fleet_scaled_to_zero_and_retires_it_after_the_cooldown(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    values = {"keda": {"minReplicaCount": 0, "maxReplicaCount": 3}}
    config = chart_config.load("keda", values).scaled(TIME_SCALE)
    assert config.keda_activation is not None and config.min_replicas == 0
    stage = Stage(config, new_migrated_database("postgres"), tmp_path, START_DELAY)
    try:
        stage.open()
        assert stage.deployment.replicas == 0 and not stage.deployment.pods()
        work = Workload(workflows=60, num_steps=4, step_seconds=2.0 / TIME_SCALE)

        figures = lull(stage, work, START_DELAY)

        changes = stage.timeline.changes
        assert changes[0][1:] == (0, 1), f"KEDA did not wake the fleet first: {changes}"
        assert figures["workflows_succeeded"] == 60 and figures["workflows_lost"] == 0
        assert changes[-1][2] == 0 and stage.deployment.replicas == 0
        assert not stage.deployment.pods()
    finally:
        stage.close()


def _two_pool_values() -> dict[str, Any]:
    """The built-in registry plus a second demo-like type on a queue of its own, served by a
    pool of its own; both pools at most two workers."""
    registry = json.loads(workflow_registry.BUILT_IN.read_text())
    registry["queues"]["queue-b"] = {"worker_concurrency": 10}
    registry["workflows"][second_workflow.NAME] = {
        "queue": "queue-b",
        "module": second_workflow.__name__,
        "input_schema": registry["workflows"]["workflow"]["input_schema"],
    }
    return {
        "registry": registry,
        "autoscaling": {"maxReplicas": 2},
        "workerPools": [{"name": "default"}, {"name": "b", "queues": ["queue-b"]}],
    }


def test_two_pools_scale_each_on_its_own_queue(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    values = _two_pool_values()
    configs = [
        chart_config.load("hpa", values, "default", contract.QUEUE_NAME).scaled(TIME_SCALE),
        chart_config.load("hpa", values, "b", "queue-b").scaled(TIME_SCALE),
    ]
    url = new_migrated_database("postgres")
    stages = []
    for name, config in zip(("a", "b"), configs, strict=True):
        (tmp_path / name).mkdir()
        stages.append(Stage(config, url, tmp_path / name, START_DELAY))
    engine = sa.create_engine(url)
    try:
        for stage in stages:
            stage.open()
        a, b = stages
        assert (a.config.workflow, b.config.workflow) == ("workflow", second_workflow.NAME)
        work = Workload(workflows=60, num_steps=4, step_seconds=2.0 / TIME_SCALE)

        first = pools.busy_pool(a, b, work, engine)
        second = pools.busy_pool(b, a, work, engine)

        print(f"\ntwo pools: load on a's queue {first}; then on b's {second}")
        # 60 workflows of 10 per worker: each busy pool asks for its maximum, the idle one
        # never scales out.
        assert first["busy_max_desired"] == second["busy_max_desired"] == 2
        assert first["idle_max_desired"] == 1 and first["idle_scale_outs"] == []
        assert second["idle_scale_outs"] == []
    finally:
        for stage in stages:
            stage.close()
        engine.dispose()


def test_a_rollout_runs_each_versions_work_on_its_own_fleet_until_the_old_one_drains(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    """Version 1's work runs on the release's workers; the release moves to version 2 with
    version 1 in previousVersions, and the version 1 workers it had all stop at once. Version
    1's work (what they were running included) finishes on version 1 workers only, its backlog
    scaling version 1's fleet alone, while new work runs on version 2's; once drained, version
    1's fleet is back at one worker, the reports say it can go, it goes, nothing of it left."""
    cap = {"autoscaling": {"maxReplicas": 2}}
    before_config = chart_config.load("hpa", {**cap, "applicationVersion": "1"})
    values = {
        **cap,
        "applicationVersion": "2",
        "previousVersions": [{"version": "1", "image": {"tag": "1.0.0"}}],
    }
    old_config = chart_config.load("hpa", values, version="1")
    new_config = chart_config.load("hpa", values)
    env = [c.worker_env["DBOS__APPVERSION"] for c in (before_config, old_config, new_config)]
    assert env == ["1", "1", "2"]
    url = new_migrated_database("postgres")
    stages = []
    for name, config in (("before", before_config), ("v1", old_config), ("v2", new_config)):
        (tmp_path / name).mkdir()
        stages.append(Stage(config.scaled(TIME_SCALE), url, tmp_path / name, START_DELAY))
    before, old, new = stages
    engine = sa.create_engine(url)
    try:
        before.open()
        # Workflows of 4 s, longer than the drain (30 s / 20): the stopped workers leave some
        # unfinished, for version 1's fleet to recover.
        work = Workload(workflows=80, num_steps=10, step_seconds=8.0 / TIME_SCALE)
        later = Workload(workflows=20, num_steps=2, step_seconds=2.0 / TIME_SCALE)

        figures = versions.upgrade(before, old, new, work, later, engine)

        print(f"\nrollout: {figures}")
        assert figures["old_max_ready"] == 2
        assert figures["old_replicas_once_drained"] == 1
        # Version 1's backlog never added a worker of version 2.
        assert figures["new_max_desired_while_only_old_work"] == 1
        old_workers = figures["before_pods"] | figures["old_pods"]
        assert figures["old_executors"] and figures["old_executors"] <= old_workers
        assert figures["old_executors"] & figures["old_pods"]
        # What the stopped workers left unfinished ran again, on version 1's fleet.
        assert figures["old_recovered"] > 0
        assert figures["new_executors"] and figures["new_executors"] <= figures["new_pods"]

        # Drained: the report and the metrics say version 1 can go, and it goes.
        report = subprocess.run(
            [sys.executable, "-m", "services.worker", "versions", "--json"],
            env={**os.environ, "DBOS_SYSTEM_DATABASE_URL": url},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stderr
        removable = {r["version"]: r["removable"] for r in json.loads(report.stdout)}
        assert removable == {"1": True, "2": False}
        text = httpx.get(f"http://127.0.0.1:{new.api_metrics_port}/metrics", timeout=10).text
        for status in ("enqueued", "pending", "delayed"):
            left = sample(
                text, "queue_worker_version_workflows", application_version="1", status=status
            )
            assert left == 0
        old.close()
        before.close()
        new.enqueue(later.workflows, later.num_steps, later.step_seconds)
        new.run_until(
            lambda: versions.statuses(engine).get(("2", "SUCCESS"), 0) == 2 * later.workflows,
            timeout=120,
            what="version 2's work after version 1 is gone",
        )
        counts = versions.statuses(engine)
        assert counts == {("1", "SUCCESS"): work.workflows, ("2", "SUCCESS"): 2 * later.workflows}
    finally:
        for stage in stages:
            stage.close()
        engine.dispose()

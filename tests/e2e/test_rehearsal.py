"""The autoscaling rehearsal, small and fast: the chart's HPA, read through the adapter's query
from a real Prometheus, scales real workers out on a burst and back in after it, and holds
while the load cannot be read."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.rehearsal import config as chart_config
from benchmarks.rehearsal.scenarios import Workload, lull, outage
from benchmarks.rehearsal.stage import Stage
from tests.conftest import NewDatabase

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

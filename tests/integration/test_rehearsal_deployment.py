"""The Deployment stand-in with real workers on PostgreSQL: replicas become ready processes,
scale-down drains the pod Kubernetes would pick, lost pods are replaced, nothing outlives it."""

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.rehearsal.deployment import DELETION_COST, Deployment, Pod, PodTemplate
from tests.conftest import NewDatabase
from tests.support.polling import wait_for

pytestmark = pytest.mark.postgres


def worker_env(database_url: str) -> dict[str, str]:
    return {
        "DBOS_SYSTEM_DATABASE_URL": database_url,
        "WORKER_POLLING_INTERVAL_SECONDS": "0.1",
        "WORKER_DRAIN_TIMEOUT_SECONDS": "2",
    }


def settle(deployment: Deployment, done: Callable[[], bool], what: str) -> None:
    """Reconcile until `done()`, as the controller loop would."""

    def reconciled() -> bool:
        deployment.reconcile()
        return done()

    wait_for(reconciled, timeout=60, interval=0.05, what=what)


def new_pod(deployment: Deployment, known: list[Pod]) -> Pod:
    (pod,) = [p for p in deployment.pods() if p not in known]
    return pod


def test_scale_down_drains_the_newest_ready_pod_unless_its_deletion_cost_is_higher(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    template = PodTemplate(
        env=worker_env(new_migrated_database("postgres")), termination_grace_seconds=10
    )
    with Deployment("worker", template, tmp_path) as deployment:
        scaled_in: list[tuple[str, str]] = []
        deployment.on_scale_in = lambda pod: scaled_in.append((pod.name, pod.phase))
        deployment.scale(1)
        settle(deployment, lambda: deployment.ready_replicas() == 1, "one ready worker")
        (first,) = deployment.pods()
        deployment.scale(2)
        settle(deployment, lambda: deployment.ready_replicas() == 2, "two ready workers")
        second = new_pod(deployment, [first])
        for pod in (first, second):
            assert f"worker.ready executor_id={pod.name} " in pod.log()

        # Ready for a few seconds against a fraction of one: far apart in Kubernetes' powers of
        # two, so its order is the newest first and not a coin toss.
        assert first.ready_since is not None and second.ready_since is not None
        now = time.monotonic()
        assert now - first.ready_since > 4 * (now - second.ready_since)
        deployment.scale(1)
        deployment.reconcile()
        assert (first.phase, second.phase) == ("Running", "Terminating")
        assert deployment.ready_replicas() == 1
        settle(deployment, lambda: second.phase == "Gone", "the newest pod to drain and exit")
        assert second.exit_code == 0, second.log()
        assert "worker.draining" in second.log() and "worker.stopped" in second.log()

        deployment.scale(2)
        settle(deployment, lambda: deployment.ready_replicas() == 2, "two ready workers again")
        third = new_pod(deployment, [first])
        assert third.name not in (first.name, second.name)
        third.annotations = {DELETION_COST: "100"}
        deployment.scale(1)
        deployment.reconcile()
        assert (first.phase, third.phase) == ("Terminating", "Running")
        settle(deployment, lambda: first.phase == "Gone", "the cheaper pod to drain and exit")
        assert first.exit_code == 0, first.log()
        assert deployment.pods() == [third] and third.ready
        # Each pod a scale-down deleted was reported once, before its SIGTERM.
        assert scaled_in == [(second.name, "Running"), (first.name, "Running")]


def test_start_delay_lost_pods_grace_and_close(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    template = PodTemplate(
        env=worker_env(new_migrated_database("postgres")),
        termination_grace_seconds=0,
        start_delay_seconds=1.0,
    )
    with Deployment("delayed", template, tmp_path) as deployment:
        deployment.scale(1)
        deployment.reconcile()
        (lost,) = deployment.pods()
        assert (lost.phase, lost.container) == ("Pending", None)
        settle(deployment, lambda: lost.phase == "Running", "the start delay to pass")
        assert lost.started_at is not None and lost.started_at - lost.created_at >= 1.0
        settle(deployment, lambda: lost.ready, "the delayed pod to be ready")

        deployment.kill(lost)
        settle(
            deployment,
            lambda: lost.phase == "Gone" and deployment.ready_replicas() == 1,
            "a ready replacement for the lost pod",
        )
        assert lost.exit_code == -signal.SIGKILL
        (replacement,) = deployment.pods()
        assert replacement.name != lost.name
        assert replacement.created_at >= (lost.gone_at or 0)

        # A grace of 0: SIGKILL right behind SIGTERM, no drain.
        deployment.scale(0)
        deployment.reconcile()
        assert replacement.phase == "Terminating"
        settle(deployment, lambda: replacement.phase == "Gone", "the pod to be killed")
        assert replacement.exit_code == -signal.SIGKILL
        assert "worker.stopped" not in replacement.log()

        deployment.scale(2)
        settle(
            deployment,
            lambda: [p.phase for p in deployment.pods()] == ["Running", "Running"],
            "two started pods",
        )
        left = [p.container.process for p in deployment.pods() if p.container is not None]
    assert len(left) == 2
    assert all(process.returncode == -signal.SIGKILL for process in left)
    for process in left:
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)
    assert deployment.pods() == []

"""Scale-in spares the busy worker: real workers keep their pods' deletion cost through the
stand-in's Kubernetes API, and the Deployment stand-in deletes the idle, older pod rather than
the busy, newer one that Kubernetes' age rules would pick; the busy pod's workflows end where
they run, with no drain and no recovery. Without the feature the newer, busy pod is deleted."""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions

from benchmarks.rehearsal.apiserver import ApiServer
from benchmarks.rehearsal.deployment import DELETION_COST, Deployment, Pod, PodTemplate
from services import contract
from tests.conftest import NewDatabase
from tests.support.polling import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.requires_tool("openssl")]

BUSY_WORKFLOWS = 3
# Long enough to still run after the costs are written and the scale-in is decided.
STEPS, STEP_SECONDS = 12, 0.5
# A queue of the built-in registry that this test leaves empty: the idle pod serves it.
IDLE_QUEUE = "fanout"


class Clock:
    """Monotonic time that the test can move ahead: the older pod is made ready "long ago",
    so that Kubernetes' bucketed age rule ranks the two pods for sure (not by their uids)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@dataclass
class Fleet:
    url: str
    engine: sa.Engine
    deployment: Deployment
    api: ApiServer
    clock: Clock

    def settle(self, done: Callable[[], bool], what: str) -> None:
        """Reconcile until `done()`, as the controller loop would."""

        def reconciled() -> bool:
            self.deployment.reconcile()
            return done()

        wait_for(reconciled, timeout=90, interval=0.05, what=what)

    def pending_on(self, executor_id: str) -> int:
        with self.engine.connect() as conn:
            count = conn.execute(
                sa.text(
                    "SELECT count(*) FROM dbos.workflow_status "
                    "WHERE status = 'PENDING' AND executor_id = :executor"
                ),
                {"executor": executor_id},
            ).scalar_one()
        return int(count)

    def finished(self, ids: list[str]) -> list[tuple[str, str, int]]:
        """(status, executor, recovery attempts) of each workflow."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status "
                    "WHERE workflow_uuid = ANY(:ids)"
                ),
                {"ids": ids},
            ).all()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def start_fleet(url: str, workdir: Path, deletion_cost: bool) -> Iterator[Fleet]:
    env = {
        "DBOS_SYSTEM_DATABASE_URL": url,
        "WORKER_POLLING_INTERVAL_SECONDS": "0.1",
        "WORKER_DRAIN_TIMEOUT_SECONDS": "30",
    }
    if deletion_cost:
        env["WORKER_POD_DELETION_COST"] = "true"
        # Every change of the count written within a second (the default waits up to 10 s).
        env["WORKER_POD_DELETION_COST_INTERVAL_SECONDS"] = "1"
    clock = Clock()
    template = PodTemplate(env=env, termination_grace_seconds=40)
    with ApiServer(workdir) as api, Deployment("worker", template, workdir, clock) as deployment:
        api.attach(deployment)
        kubelet = deployment.pod_env
        # The first pod serves a queue nobody fills, the second the demo's: which pod is busy
        # is decided here, not by which worker polls first.
        deployment.pod_env = lambda pod: {
            **kubelet(pod),
            "WORKER_QUEUES": IDLE_QUEUE if pod is deployment.history()[0] else contract.QUEUE_NAME,
        }
        engine = sa.create_engine(url)
        try:
            yield Fleet(url, engine, deployment, api, clock)
        finally:
            engine.dispose()


@pytest.fixture
def fleet_with_costs(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Fleet]:
    yield from start_fleet(new_migrated_database("postgres"), tmp_path, deletion_cost=True)


@pytest.fixture
def fleet_without_costs(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Fleet]:
    yield from start_fleet(new_migrated_database("postgres"), tmp_path, deletion_cost=False)


def older_idle_newer_busy(fleet: Fleet) -> tuple[Pod, Pod, list[str]]:
    """Two ready pods, the newer one running BUSY_WORKFLOWS long workflows; their ids."""
    deployment = fleet.deployment
    deployment.scale(1)
    fleet.settle(lambda: deployment.ready_replicas() == 1, "the first worker ready")
    (older,) = deployment.pods()
    fleet.clock.offset += 600.0  # ten minutes later (a jump of the stand-in's clock)
    deployment.scale(2)
    fleet.settle(lambda: deployment.ready_replicas() == 2, "the second worker ready")
    (newer,) = [pod for pod in deployment.pods() if pod is not older]
    client = DBOSClient(system_database_url=fleet.url)
    try:
        options: EnqueueOptions = {
            "queue_name": contract.QUEUE_NAME,
            "workflow_name": contract.WORKFLOW_NAME,
        }
        ids = [
            client.enqueue(options, STEPS, STEP_SECONDS).workflow_id for _ in range(BUSY_WORKFLOWS)
        ]
    finally:
        client.destroy()
    wait_for(
        lambda: fleet.pending_on(newer.name) == BUSY_WORKFLOWS,
        timeout=30,
        what="the newer worker to run every workflow",
    )
    return older, newer, ids


def test_scale_in_deletes_the_idle_pod_and_the_busy_one_finishes_its_work(
    fleet_with_costs: Fleet,
) -> None:
    fleet = fleet_with_costs
    older, newer, ids = older_idle_newer_busy(fleet)
    wait_for(
        lambda: (
            (older.deletion_cost, newer.deletion_cost) == (0, BUSY_WORKFLOWS)
            and DELETION_COST in older.annotations
        ),
        timeout=30,
        what=f"costs 0 and {BUSY_WORKFLOWS} on the idle and the busy pod",
    )
    assert fleet.pending_on(newer.name) == BUSY_WORKFLOWS  # still running: the cost is current

    fleet.deployment.scale(1)
    fleet.deployment.reconcile()
    assert (older.phase, newer.phase) == ("Terminating", "Running")
    fleet.settle(lambda: older.phase == "Gone", "the idle pod to exit")
    assert older.exit_code == 0, older.log()

    wait_for(
        lambda: [status for status, _, _ in fleet.finished(ids)] == ["SUCCESS"] * len(ids),
        timeout=60,
        interval=0.2,
        what="the busy pod's workflows to finish",
    )
    # Where they started, once: no drain moved them, no recovery ran them again.
    assert fleet.finished(ids) == [("SUCCESS", newer.name, 1)] * len(ids)
    assert "worker.draining" not in newer.log()
    assert "fleet.recovered_orphans" not in newer.log()
    # The cost came back down with the work, and each worker only patched its own pod.
    wait_for(lambda: newer.deletion_cost == 0, timeout=10, what="the busy pod's cost back to 0")
    assert {caller for caller, _, _ in fleet.api.patches} == {older.name, newer.name}
    assert all(caller == patched and status == 200 for caller, patched, status in fleet.api.patches)


def test_without_deletion_costs_the_newer_busy_pod_is_the_one_deleted(
    fleet_without_costs: Fleet,
) -> None:
    fleet = fleet_without_costs
    older, newer, _ = older_idle_newer_busy(fleet)
    fleet.deployment.scale(1)
    fleet.deployment.reconcile()
    assert (older.phase, newer.phase) == ("Running", "Terminating")
    wait_for(lambda: "worker.draining" in newer.log(), timeout=30, what="the busy pod to drain")
    assert fleet.api.patches == [] and older.annotations == newer.annotations == {}

"""Dead workers' work is visible and recovered; stranded versions are visible; retention."""

import signal
import time
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, NewDatabase
from tests.support.fleet import SystemDatabase
from tests.support.metrics import sample
from tests.support.polling import wait_for
from tests.support.processes import Api, start_worker, wait_worker_ready

FAST_FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "EXECUTOR_GRACE_SECONDS": "3",
    "REAPER_INTERVAL_SECONDS": "0.2",
}


def _metric(api: Api, name: str, **labels: str) -> float | None:
    return sample(api.http.get("/metrics").text, name, **labels)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_workers_work_is_visible_then_recovered_by_a_new_worker(
    backend: str, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database(backend)
    first = start_worker(url, tmp_path, **FAST_FLEET)
    api = Api(url, tmp_path, EXECUTOR_GRACE_SECONDS="3")
    second = None
    try:
        wait_worker_ready(first)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=4, step_seconds=0.5)
        api.wait_status(workflow_id, "PENDING")
        first.process.kill()

        def orphan_reported() -> dict[str, object] | None:
            fleet = api.http.get("/executors").json()
            orphaned = fleet["orphaned_workflows"]
            return fleet if orphaned == [{"queue": "workflow-queue", "workflows": 1}] else None

        fleet = wait_for(orphan_reported, timeout=30, what="orphaned work in /executors")
        executors = {e["executor_id"]: e for e in fleet["executors"]}  # type: ignore[attr-defined]
        assert executors[first.executor_id]["alive"] is False
        assert _metric(api, "queue_worker_orphaned_workflows", queue="workflow-queue") == 1
        assert api.workflow(workflow_id)["status"] == "PENDING"  # nobody left to recover it

        second = start_worker(url, tmp_path, **FAST_FLEET)
        done = api.wait_status(workflow_id, "SUCCESS", timeout=60)
        assert done["executor_id"] == second.executor_id
        assert done["steps_completed"] == 4
        assert api.http.get("/executors").json()["orphaned_workflows"] == []
    finally:
        api.stop()
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stranded_versions_are_visible_and_retention_deletes_only_finished_work(
    backend: str, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database(backend)
    worker = start_worker(
        url, tmp_path, RETENTION_SECONDS="1", RETENTION_INTERVAL_SECONDS="0.2", **FAST_FLEET
    )
    api = Api(url, tmp_path)
    # An API of a version no worker runs yet, as during a rollout that went wrong.
    api_v2 = Api(url, tmp_path, DBOS__APPVERSION="2")
    db = SystemDatabase(url)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        api_v2.wait_ready()
        finished = {api.enqueue(num_steps=2, step_seconds=0) for _ in range(3)}
        stranded = api_v2.enqueue(num_steps=1, step_seconds=0)
        # Cancelled work is finished too (and DBOS takes it off its queue when it cancels).
        cancelled = api_v2.enqueue(num_steps=1, step_seconds=0)
        assert api.http.post(f"/workflows/{cancelled}/cancel").status_code == 202
        finished.add(cancelled)

        fleet = api.http.get("/executors").json()
        assert fleet["stranded_workflows"] == [
            {"queue": "workflow-queue", "application_version": "2", "workflows": 1}
        ]
        labels = {"queue": "workflow-queue", "application_version": "2"}
        assert _metric(api, "queue_worker_queue_stranded_workflows", **labels) == 1
        assert _metric(api, "queue_worker_live_executors", application_version="1") == 1

        wait_for(
            lambda: all(api.http.get(f"/workflows/{w}").status_code == 404 for w in finished),
            timeout=30,
            what="finished workflows deleted by retention",
        )
        assert set(db.leftovers(finished).values()) == {0}, db.leftovers(finished)
        assert api.workflow(stranded)["status"] == "ENQUEUED"
        assert "fleet.retention_deleted" in worker.log()
    finally:
        db.close()
        api.stop()
        api_v2.stop()
        worker.stop()


def test_a_worker_is_alive_for_the_grace_it_declares_where_that_is_longer(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # The reaper judges an executor by its own declared grace; what /executors and the
    # orphaned count show must agree with it, not use the API's shorter one.
    url = new_migrated_database("sqlite")
    worker = start_worker(url, tmp_path, **{**FAST_FLEET, "EXECUTOR_GRACE_SECONDS": "8"})
    api = Api(url, tmp_path, EXECUTOR_GRACE_SECONDS="3")
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=40, step_seconds=0.5)
        api.wait_status(workflow_id, "PENDING")
        worker.process.kill()
        killed = time.monotonic()

        def dead() -> bool:
            fleet = api.http.get("/executors").json()
            (executor,) = fleet["executors"]
            return not executor["alive"] and fleet["orphaned_workflows"] != []

        wait_for(dead, timeout=30, interval=0.1, what="the killed worker reported dead")
        # Its last heartbeat was at most one interval before the kill.
        assert time.monotonic() - killed >= 8 - 0.2 - 0.5
    finally:
        api.stop()
        worker.stop(signal.SIGKILL)

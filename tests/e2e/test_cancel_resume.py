"""Cancel and resume, again and again, never run two executions of one workflow at once.

A cancelled execution goes on until its current step ends; a resume that put the workflow
back on the queue at once would let a second execution start beside it.
"""

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.conftest import NewDatabase
from tests.support.audited_worker import create_audit_table
from tests.support.fleet import SystemDatabase
from tests.support.polling import wait_for
from tests.support.processes import Api, start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres

NUM_STEPS, STEP_SECONDS, ROUNDS = 12, 0.25, 4
# Six seconds of steps: the late start (four seconds) comes in the middle of the resumed run.
NUM_LATE_STEPS = 12
FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.25",
    "EXECUTOR_GRACE_SECONDS": "3",
    "WORKER_CONCURRENCY": "4",
}


@pytest.fixture
def database(new_migrated_database: NewDatabase) -> Iterator[tuple[str, SystemDatabase]]:
    url = new_migrated_database("postgres")
    create_audit_table(url)
    db = SystemDatabase(url)
    yield url, db
    db.close()


def _running_or_done(api: Api, workflow_id: str) -> str | None:
    status = str(api.workflow(workflow_id)["status"])
    return status if status in ("PENDING", "SUCCESS") else None


def test_cancel_and_resume_in_a_loop_never_overlap_two_executions(
    database: tuple[str, SystemDatabase], tmp_path: Path
) -> None:
    url, db = database
    audited = "tests.support.audited_worker"
    workers = [
        start_worker(url, tmp_path, audited, STEP_AUDIT_DATABASE_URL=url, **FLEET) for _ in range(2)
    ]
    api = Api(url, tmp_path, EXECUTOR_GRACE_SECONDS=FLEET["EXECUTOR_GRACE_SECONDS"])
    refused = cycles = 0
    try:
        for worker in workers:
            wait_worker_ready(worker)
        api.wait_ready()
        ids = [api.enqueue(num_steps=NUM_STEPS, step_seconds=STEP_SECONDS) for _ in range(3)]

        for _ in range(ROUNDS):
            for workflow_id in ids:
                status = wait_for(
                    partial(_running_or_done, api, workflow_id),
                    timeout=60,
                    what=f"{workflow_id} running",
                )
                if status == "SUCCESS":
                    continue
                if api.http.post(f"/workflows/{workflow_id}/cancel").status_code != 202:
                    continue  # it finished in the meantime
                cycles += 1

                def resume(w: str = workflow_id) -> httpx.Response | None:
                    nonlocal refused
                    response = api.http.post(f"/workflows/{w}/resume")
                    if response.status_code == 409:
                        refused += 1
                        assert response.headers.get("retry-after") == "1", response.text
                        return None
                    return response

                resumed = wait_for(resume, timeout=30, interval=0.02, what="resume accepted")
                assert resumed.status_code == 202, resumed.text

        for workflow_id in ids:
            api.wait_status(workflow_id, "SUCCESS", timeout=120)

        assert cycles >= 3, "too few workflows were cancelled while running"
        assert db.overlapping_steps() == [], "two executions of a workflow ran at once"
        runs = db.step_runs()
        assert set(runs) == {(w, i) for w in ids for i in range(NUM_STEPS)}
        # Resuming right after a cancel found the execution still inside its step.
        assert refused > 0
        print(f"\ncancel/resume: {cycles} cycles, {refused} resumes refused while a step ran")
    finally:
        api.stop()
        for worker in workers:
            worker.stop()


def test_an_execution_that_starts_after_its_workflow_was_resumed_stops_before_any_step(
    database: tuple[str, SystemDatabase], tmp_path: Path
) -> None:
    """DBOS claims a workflow, then starts its code in a pool thread. If that thread is slow,
    the workflow can be cancelled and resumed before the code starts (nothing listed it yet):
    the late execution must see that it no longer owns the workflow and run no step."""
    url, db = database
    slow = start_worker(
        url,
        tmp_path,
        "tests.support.audited_worker",
        STEP_AUDIT_DATABASE_URL=url,
        AUDIT_SLOW_START_SECONDS="4",
        **FLEET,
    )
    api = Api(url, tmp_path, EXECUTOR_GRACE_SECONDS=FLEET["EXECUTOR_GRACE_SECONDS"])
    try:
        wait_worker_ready(slow)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=NUM_LATE_STEPS, step_seconds=0.5)
        api.wait_status(workflow_id, "PENDING")  # claimed; its code starts in four seconds
        assert api.http.post(f"/workflows/{workflow_id}/cancel").status_code == 202

        def resumed() -> httpx.Response | None:
            response = api.http.post(f"/workflows/{workflow_id}/resume")
            return response if response.status_code != 409 else None

        # Nothing listed the execution yet, so the resume is accepted, and the workflow runs
        # again at once (its second start here is not slowed) while the first waits to start.
        assert wait_for(resumed, timeout=30, interval=0.05, what="resume").status_code == 202
        api.wait_status(workflow_id, "SUCCESS", timeout=60)
        # The late execution either stops before its first step, or runs steps beside the
        # resumed one (the fault).
        wait_for(
            lambda: "execution.not_owned" in slow.log() or db.overlapping_steps(),
            timeout=30,
            what="the late execution to stop or to run",
        )
        assert db.overlapping_steps() == [], "the late execution ran beside the resumed one"
        assert db.step_runs() == {(workflow_id, i): 1 for i in range(NUM_LATE_STEPS)}
        assert "execution.not_owned" in slow.log()
    finally:
        api.stop()
        slow.stop()

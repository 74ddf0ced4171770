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
FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.25",
    "EXECUTOR_GRACE_SECONDS": "2",
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

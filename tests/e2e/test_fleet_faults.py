"""Workers that crash, drain and join mid-run lose no workflow and never take a live one's work."""

import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NewDatabase
from tests.support.audited_worker import create_audit_table
from tests.support.fleet import SystemDatabase
from tests.support.polling import wait_for
from tests.support.processes import Api, WorkerProcess, start_worker, wait_worker_ready

GRACE_SECONDS = 3.0
FAST_FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "EXECUTOR_GRACE_SECONDS": str(GRACE_SECONDS),
    "REAPER_INTERVAL_SECONDS": "0.2",
    "WORKER_CONCURRENCY": "8",
    "WORKER_POLLING_INTERVAL_SECONDS": "0.1",
}
AUDITED = "tests.support.audited_worker"

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(new_migrated_database: NewDatabase) -> Iterator[tuple[str, SystemDatabase]]:
    url = new_migrated_database("postgres")
    create_audit_table(url)
    db = SystemDatabase(url)
    yield url, db
    db.close()


def _worker(url: str, workdir: Path, **env: str) -> WorkerProcess:
    return start_worker(url, workdir, AUDITED, STEP_AUDIT_DATABASE_URL=url, **{**FAST_FLEET, **env})


def test_kill_drain_and_join_mid_run_lose_nothing(
    database: tuple[str, SystemDatabase], tmp_path: Path
) -> None:
    url, db = database
    total, num_steps = 300, 3
    # B drains for 0 s: whatever it runs when SIGTERM comes is left PENDING for the reaper.
    a, b, c = (_worker(url, tmp_path, WORKER_DRAIN_TIMEOUT_SECONDS="0") for _ in range(3))
    api = Api(url, tmp_path, EXECUTOR_GRACE_SECONDS=str(GRACE_SECONDS))
    workers = [a, b, c]
    try:
        for worker in workers:
            wait_worker_ready(worker)
        api.wait_ready()
        ids = {api.enqueue(num_steps=num_steps, step_seconds=0.1) for _ in range(total)}

        orphans_a = wait_for(lambda: db.pending_on(a.executor_id), timeout=60, what="A busy")
        a.process.kill()  # kill -9: no drain, no goodbye
        orphans_b = wait_for(lambda: db.pending_on(b.executor_id), timeout=60, what="B busy")
        b.send(signal.SIGTERM)
        d = _worker(url, tmp_path)
        workers.append(d)
        assert b.wait(timeout=30) == 0, b.log()

        wait_for(
            lambda: db.statuses().get("SUCCESS") == total or None,
            timeout=120,
            interval=0.25,
            what=f"all {total} workflows SUCCESS; now {db.statuses()}",
        )
        assert db.statuses() == {"SUCCESS": total}

        # The crashed and the drained worker's work went back on the queue with its attempt
        # count kept (DBOS's resume would have reset it to 0, the reaper must not). A workflow
        # may also have finished on its first worker in the moment before the fault.
        rows = db.rows(orphans_a | orphans_b)
        recovered = {
            w
            for w, (_, executor, _) in rows.items()
            if executor not in (a.executor_id, b.executor_id)
        }
        assert recovered & orphans_a, "nothing of the killed worker was recovered"
        for workflow_id in recovered:
            assert rows[workflow_id][2] >= 2, (workflow_id, rows[workflow_id])

        runs = db.step_runs()
        expected = {(w, i) for w in ids for i in range(num_steps)}
        assert set(runs) == expected, "a step never ran to completion"
        repeats = Counter(w for (w, _), n in runs.items() if n > 1)
        assert not [w for w, n in repeats.items() if n == num_steps], "a workflow ran twice"
        reexecuted = sum(n - 1 for n in runs.values())
        print(
            f"\nfleet fault test: {total} workflows; in flight at the faults: {len(orphans_a)} on "
            f"the killed worker, {len(orphans_b)} on the drained one; {len(recovered)} recovered "
            f"elsewhere; {reexecuted} step bodies re-executed"
        )

        executors = {e["executor_id"]: e for e in api.http.get("/executors").json()["executors"]}
        assert not executors[a.executor_id]["alive"]
        assert executors[b.executor_id]["stopped_at"] is not None
        assert executors[d.executor_id]["alive"]
    finally:
        api.stop()
        for worker in workers:
            worker.stop(signal.SIGKILL)


def test_reaper_never_takes_a_live_workers_work(
    database: tuple[str, SystemDatabase], tmp_path: Path
) -> None:
    url, db = database
    owner = _worker(url, tmp_path)
    api = Api(url, tmp_path)
    reaper = None
    try:
        wait_worker_ready(owner)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=40, step_seconds=0.25)
        api.wait_status(workflow_id, "PENDING")
        # A second worker that checks for orphans ten times a second while the first one is
        # busy with a ten-second workflow: wait for five of its rounds to have judged the fleet
        # (however slow the machine), then let the workflow finish.
        reaper = _worker(url, tmp_path, LOG_LEVEL="DEBUG", REAPER_INTERVAL_SECONDS="0.1")
        wait_worker_ready(reaper)
        wait_for(
            lambda: reaper.log().count("fleet.recovery_ran recovered=0") >= 5,
            timeout=60,
            what="five recovery rounds of the second worker",
        )
        assert api.workflow(workflow_id)["status"] == "PENDING", "finished before the rounds"

        done = api.wait_status(workflow_id, "SUCCESS")

        assert "fleet.recovered_orphans" not in reaper.log()
        assert done["executor_id"] == owner.executor_id
        assert db.rows({workflow_id})[workflow_id] == ("SUCCESS", owner.executor_id, 1)
        assert db.step_runs() == {(workflow_id, i): 1 for i in range(40)}
    finally:
        api.stop()
        owner.stop(signal.SIGKILL)
        if reaper is not None:
            reaper.stop(signal.SIGKILL)

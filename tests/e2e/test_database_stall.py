"""A database that hangs, rather than refusing connections, takes no live worker's work.

The test freezes a PostgreSQL server of its own (SIGSTOP) for longer than the grace period,
with two workers busy: when it thaws, every heartbeat in the table is stale, yet the reaper
must recognise that its own view is stale too, and recover nothing.
"""

import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.support.audited_worker import create_audit_table
from tests.support.databases import PostgresServer, ThrowawayPostgres, migrate
from tests.support.fleet import SystemDatabase
from tests.support.polling import wait_for
from tests.support.processes import Api, WorkerProcess, start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres

GRACE_SECONDS = 3.0
STALL_SECONDS = 2 * GRACE_SECONDS
NUM_STEPS = 10
FAST_FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.25",
    "EXECUTOR_GRACE_SECONDS": str(GRACE_SECONDS),
    "REAPER_INTERVAL_SECONDS": "0.2",
    "WORKER_CONCURRENCY": "8",
    "LOG_LEVEL": "DEBUG",
}


@pytest.fixture
def frozen_database() -> Iterator[tuple[ThrowawayPostgres, str]]:
    with ThrowawayPostgres() as server:
        databases = PostgresServer(server.url)
        try:
            url = databases.create_database()
            migrate(url)
            create_audit_table(url)
            yield server, url
        finally:
            server.thaw()
            databases.close()


def _ready(worker: WorkerProcess) -> int:
    try:
        return httpx.get(f"{worker.probe_url}/readyz", timeout=1).status_code
    except httpx.TransportError:
        return 0


def test_a_stall_longer_than_the_grace_takes_no_live_workers_work(
    frozen_database: tuple[ThrowawayPostgres, str], tmp_path: Path
) -> None:
    server, url = frozen_database
    workers = [
        start_worker(
            url, tmp_path, "tests.support.audited_worker", STEP_AUDIT_DATABASE_URL=url, **FAST_FLEET
        )
        for _ in range(2)
    ]
    api = Api(url, tmp_path)
    db = SystemDatabase(url)
    try:
        for worker in workers:
            wait_worker_ready(worker)
        api.wait_ready()
        ids = {api.enqueue(num_steps=NUM_STEPS, step_seconds=0.5) for _ in range(12)}
        # The reapers must have been able to run before the stall: healthy for a grace period.
        wait_for(
            lambda: all("fleet.recovery_ran" in w.log() for w in workers),
            timeout=30,
            what="both reapers running",
        )
        # Both busy right now, so the stall catches work in flight on each.
        for worker in workers:
            executor_id = worker.executor_id
            wait_for(partial(db.pending_on, executor_id), timeout=30, what=f"{executor_id} busy")
        db.engine.dispose()  # its connections would wait on the frozen server too

        server.freeze()
        frozen_at = time.monotonic()
        wait_for(
            lambda: all(_ready(w) == 503 for w in workers),
            timeout=STALL_SECONDS,
            what="workers to report not ready while the database hangs",
        )
        threading.Event().wait(max(0.0, frozen_at + STALL_SECONDS - time.monotonic()))
        logs_at_thaw = [len(w.log()) for w in workers]
        server.thaw()

        wait_for(
            lambda: db.statuses().get("SUCCESS") == len(ids) or None,
            timeout=120,
            interval=0.25,
            what=f"all workflows SUCCESS; now {db.statuses()}",
        )
        wait_for(lambda: all(_ready(w) == 200 for w in workers), timeout=30, what="ready again")
        # The reapers ran again after the stall (so the test is not passing vacuously)...
        wait_for(
            lambda: any(
                "fleet.recovery_ran" in w.log()[at:]
                for w, at in zip(workers, logs_at_thaw, strict=True)
            ),
            timeout=30,
            what="a reaper to run after the stall",
        )
        # ...and took nothing: every workflow ran once, on its first worker, each step once.
        for worker in workers:
            assert "fleet.recovered_orphans" not in worker.log(), worker.log_path
        attempts = {w: row[2] for w, row in db.rows(ids).items()}
        assert set(attempts.values()) == {1}, attempts
        runs = db.step_runs()
        assert runs == {(w, i): 1 for w in ids for i in range(NUM_STEPS)}
    finally:
        server.thaw()  # before stopping the workers: a drain needs the database
        db.close()
        api.stop()
        for worker in workers:
            worker.stop()

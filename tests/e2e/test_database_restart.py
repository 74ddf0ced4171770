"""PostgreSQL restarts mid-run: the services stay up, the API answers 503 fast, no work is lost."""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.databases import ThrowawayPostgres, migrate
from tests.support.polling import wait_for
from tests.support.processes import Api, WorkerProcess, free_port, start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres
FAST_FLEET = {
    "HEARTBEAT_INTERVAL_SECONDS": "0.2",
    "EXECUTOR_GRACE_SECONDS": "3",
    "REAPER_INTERVAL_SECONDS": "0.2",
}


@pytest.fixture
def server() -> Iterator[ThrowawayPostgres]:
    # A server of the test's own: restarting the shared one would disturb everything else.
    try:
        server = ThrowawayPostgres(free_port())
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run this test: {exc}")
        pytest.skip(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.remove()


def _worker_ready(worker: WorkerProcess) -> int:
    return httpx.get(f"{worker.probe_url}/readyz", timeout=5).status_code


def test_work_resumes_after_a_database_restart(server: ThrowawayPostgres, tmp_path: Path) -> None:
    workdir = tmp_path
    url = sa.make_url(server.url).set(database="dbos_queue_worker").render_as_string(False)
    migrate(url)
    worker = start_worker(url, workdir, **FAST_FLEET)
    api = Api(url, workdir, EXECUTOR_GRACE_SECONDS="3")
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        total = 40
        ids = {api.enqueue(num_steps=3, step_seconds=0.2) for _ in range(total)}

        def succeeded() -> int:
            page = api.http.get("/workflows", params={"status": "SUCCESS", "limit": "500"})
            return len(page.json()["workflows"]) if page.status_code == 200 else 0

        wait_for(lambda: succeeded() >= 5, timeout=60, what="some workflows done")
        server.stop()

        started = time.monotonic()
        down = api.http.get("/workflows")
        assert down.status_code == 503 and time.monotonic() - started < 3
        assert api.http.get("/readyz").status_code == 503
        assert worker.process.poll() is None, "the worker died with its database"
        # The worker's readiness follows its heartbeats: it cannot take work now.
        wait_for(lambda: _worker_ready(worker) == 503, timeout=30, what="worker not ready")

        server.start()
        wait_for(lambda: succeeded() == total, timeout=120, interval=0.25, what="all SUCCESS")
        wait_for(lambda: _worker_ready(worker) == 200, timeout=30, what="worker ready again")
        listed = api.http.get("/workflows", params={"limit": "500"}).json()["workflows"]
        assert {w["workflow_id"] for w in listed} == ids
        assert {w["status"] for w in listed} == {"SUCCESS"}
        assert worker.process.poll() is None and api.service.process.poll() is None
    finally:
        api.stop()
        worker.stop()

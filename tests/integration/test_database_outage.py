"""With its database unreachable the API stays up and answers fast: 503s, never hung requests."""

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import NewDatabase
from tests.support.databases import count_workflows
from tests.support.metrics import sample
from tests.support.polling import wait_for
from tests.support.processes import Api, free_port

# Requests must fail well inside DBOS's default retry window (tens of seconds).
FAST_SECONDS = 3.0


@pytest.fixture(scope="module")
def api_without_database(workdir: Path) -> Iterator[Api]:
    # Nothing listens on this port: every connection attempt is refused.
    url = f"postgresql://postgres:never-logged@127.0.0.1:{free_port()}/nowhere"
    api = Api(url, workdir)
    try:
        api.wait_listening()
        yield api
    finally:
        api.stop()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/workflows"),
        ("POST", "/workflows:batch"),
        ("GET", "/workflows"),
        ("GET", "/workflows/some-id"),
        ("POST", "/workflows/some-id/cancel"),
        ("POST", "/workflows/some-id/resume"),
        ("GET", "/readyz"),
    ],
)
def test_database_calls_fail_fast_with_503(
    api_without_database: Api, method: str, path: str
) -> None:
    body: object = None
    if path.endswith(":batch"):
        body = {"workflows": [{}, {"idempotency_key": "k"}]}
    elif path == "/workflows" and method == "POST":
        body = {}
    started = time.monotonic()
    response = api_without_database.http.request(method, path, json=body)
    elapsed = time.monotonic() - started

    assert response.status_code == 503, response.text
    assert elapsed < FAST_SECONDS, f"{method} {path} took {elapsed:.1f}s"
    assert "never-logged" not in response.text
    if path != "/readyz":
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "1"
        assert "database is unavailable" in response.json()["detail"]


def test_liveness_and_metrics_still_answer(api_without_database: Api) -> None:
    assert api_without_database.http.get("/healthz").status_code == 200
    metrics = api_without_database.http.get("/metrics")
    assert metrics.status_code == 200
    # No queue samples at all (an autoscaler then holds), and the failure is counted.
    assert "queue_worker_queue_workflows{" not in metrics.text
    errors = sample(metrics.text, "queue_worker_metrics_collection_errors_total")
    assert errors is not None and errors >= 1


def test_secrets_stay_out_of_the_logs(api_without_database: Api) -> None:
    api_without_database.http.get("/workflows")
    assert "never-logged" not in api_without_database.service.log()


def test_a_locked_sqlite_database_gives_503_not_a_hung_request(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("sqlite")
    api = Api(url, tmp_path, API_REQUEST_TIMEOUT_SECONDS="2")
    key = {"Idempotency-Key": f"locked-{uuid.uuid4()}", "Content-Type": "application/json"}
    blocker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        api.wait_ready()
        blocker.execute("BEGIN EXCLUSIVE")  # another process holding SQLite's write lock
        started = time.monotonic()
        locked = api.http.post("/workflows", headers=key)
        assert locked.status_code == 503, locked.text
        assert time.monotonic() - started < 2 + FAST_SECONDS
        blocker.execute("ROLLBACK")

        # The retry, with the same key, yields one workflow whatever became of the first try.
        def accepted() -> httpx.Response | None:
            response = api.http.post("/workflows", headers=key)
            return response if response.status_code == 202 else None

        retried = wait_for(accepted, timeout=30, what="the retry to be accepted")
        assert count_workflows(url) == 1
        assert api.workflow(retried.json()["workflow_id"])["status"] == "ENQUEUED"
    finally:
        blocker.close()
        api.stop()

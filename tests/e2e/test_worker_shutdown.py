"""The worker stops cleanly on SIGTERM/SIGINT: no hang, and in-flight work drains to the end."""

import signal
from pathlib import Path

import pytest

from tests.conftest import NewDatabase
from tests.support.databases import count_workflows
from tests.support.processes import Api, start_worker, wait_worker_ready


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_stop_signal_drains_in_flight_work_then_exits(
    sig: signal.Signals, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("postgres")
    worker = start_worker(url, tmp_path, WORKER_DRAIN_TIMEOUT_SECONDS="20")
    api = Api(url, tmp_path)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=6, step_seconds=0.5)
        api.wait_status(workflow_id, "PENDING")

        worker.send(sig)

        assert worker.wait(timeout=30) == 0, worker.log()
        # The drain let the workflow finish all its steps before the process exited.
        finished = api.workflow(workflow_id)
        assert finished["status"] == "SUCCESS", finished
        assert finished["steps_completed"] == 6
        assert "worker.stopped" in worker.log()
        assert count_workflows(url) == 1
    finally:
        api.stop()
        worker.stop(signal.SIGKILL)


def test_worker_refuses_bad_configuration_without_echoing_secrets(tmp_path: Path) -> None:
    url = "postgresql://app:s3cret-pw@127.0.0.1:1/dbos"
    worker = start_worker(url, tmp_path, WORKER_CONCURRENCY="0")
    assert worker.wait(timeout=30) == 2
    log = worker.log()
    assert "WORKER_CONCURRENCY" in log
    assert "s3cret" not in log
    worker.stop()

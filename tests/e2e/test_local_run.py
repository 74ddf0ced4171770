"""`python -m services` (make run) on the embedded SQLite default, driven like a person would."""

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.polling import wait_for
from tests.support.processes import ServiceProcess, free_port


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in found.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.requires_tool("pgrep")
def test_make_run_serves_a_workflow_to_success_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    port = free_port()
    env = {"API_PORT": str(port), "WORKER_POLLING_INTERVAL_SECONDS": "0.2"}
    launcher = ServiceProcess(
        "services", env, tmp_path / "run.log", unset=("DBOS_SYSTEM_DATABASE_URL",)
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:

        def ready() -> bool:
            assert launcher.process.poll() is None, launcher.log()
            try:
                return http.get("/readyz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=90, interval=0.2, what="local API ready")
        children = _children(launcher.pid)
        assert len(children) == 2

        response = http.post("/workflows", json={"num_steps": 3, "step_seconds": 0.1})
        assert response.status_code == 202
        workflow_id = response.json()["workflow_id"]

        def succeeded() -> dict[str, object] | None:
            listed = http.get("/workflows").json()["workflows"]
            mine = [w for w in listed if w["workflow_id"] == workflow_id]
            return mine[0] if mine and mine[0]["status"] == "SUCCESS" else None

        done = wait_for(succeeded, timeout=60, what="workflow SUCCESS in GET /workflows")
        assert (done["steps_completed"], done["num_steps"]) == (3, 3)
        # The seed's default database: a SQLite file in the working directory.
        assert (tmp_path / "dbos_queue_worker.sqlite").exists()
        assert f"http://127.0.0.1:{port}" in launcher.log()

        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert launcher.wait(timeout=60) == 0, launcher.log()
        wait_for(
            lambda: not any(_alive(pid) for pid in children),
            timeout=10,
            what="no service process left",
        )
        assert "worker.stopped" in launcher.log()
    finally:
        http.close()
        launcher.stop(signal.SIGKILL)

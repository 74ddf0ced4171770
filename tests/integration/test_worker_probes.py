"""Each worker's own /healthz, /readyz and /metrics, from the real worker process."""

import subprocess

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.support.metrics import sample
from tests.support.polling import wait_for
from tests.support.tools import require_tool


def _sample(text: str, name: str, **labels: str) -> float:
    return sample(text, name, **labels) or 0.0


@pytest.mark.requires_tool("promtool")
def test_worker_probes_and_metrics_follow_its_work(stack: Stack) -> None:
    assert stack.worker is not None
    probes = httpx.Client(base_url=stack.worker.probe_url, timeout=10)
    queue = {"queue": "workflow-queue"}
    assert probes.get("/healthz").status_code == 200
    assert probes.get("/readyz").status_code == 200
    before = probes.get("/metrics").text

    done = [stack.api.enqueue(num_steps=2, step_seconds=0.05) for _ in range(3)]
    cancelled = stack.api.enqueue(num_steps=50, step_seconds=0.1)
    for workflow_id in done:
        stack.api.wait_status(workflow_id, "SUCCESS")
    stack.api.wait_status(cancelled, "PENDING")
    stack.api.http.post(f"/workflows/{cancelled}/cancel")

    def settled() -> str | None:
        text = probes.get("/metrics").text
        ended = _sample(
            text, "queue_worker_workflows_completed_total", outcome="cancelled", **queue
        )
        return (
            text
            if ended
            > _sample(
                before, "queue_worker_workflows_completed_total", outcome="cancelled", **queue
            )
            else None
        )

    after = wait_for(settled, timeout=30, what="the cancelled workflow to end on the worker")

    def grew(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    assert grew("queue_worker_workflows_completed_total", outcome="success", **queue) == 3
    assert grew("queue_worker_workflow_duration_seconds_count", outcome="success", **queue) == 3
    assert grew("queue_worker_queue_wait_seconds_count", **queue) == 4
    assert grew("queue_worker_step_duration_seconds_count", **queue) >= 6 + 1
    assert _sample(after, "queue_worker_workflows_active", **queue) == 0
    assert _sample(after, "queue_worker_worker_concurrency", **queue) == 10
    assert probes.get("/nowhere").status_code == 404
    promtool = require_tool("promtool")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=after, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    probes.close()

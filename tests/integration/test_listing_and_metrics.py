"""Listing pages and queue metrics, on an API with no worker so every workflow stays queued."""

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from services.contract import QUEUE_NAME
from tests.integration.conftest import Stack
from tests.support.databases import count_workflows
from tests.support.metrics import sample


def _all_pages(stack: Stack, limit: int, **params: str) -> list[list[dict[str, object]]]:
    pages, cursor = [], None
    while True:
        query = {"limit": str(limit), **params, **({"cursor": cursor} if cursor else {})}
        response = stack.api.http.get("/workflows", params=query)
        assert response.status_code == 200, response.text
        pages.append(response.json()["workflows"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


def test_pages_walk_every_workflow_once_newest_first(idle_stack: Stack) -> None:
    enqueued = [idle_stack.api.enqueue(num_steps=i + 1) for i in range(7)]

    pages = _all_pages(idle_stack, limit=3)

    listed = [w for page in pages for w in page]
    ids = [w["workflow_id"] for w in listed]
    assert len(ids) == len(set(ids)), "a workflow appeared on two pages"
    assert set(enqueued) <= set(ids)
    assert len(ids) == count_workflows(idle_stack.database_url)
    assert all(len(page) <= 3 for page in pages)
    keys = [(str(w["created_at"]), str(w["workflow_id"])) for w in listed]
    assert keys == sorted(keys, reverse=True), "not newest first"
    by_id = {w["workflow_id"]: w for w in listed}
    for i, workflow_id in enumerate(enqueued):
        assert by_id[workflow_id]["status"] == "ENQUEUED"
        assert by_id[workflow_id]["num_steps"] == i + 1
        assert by_id[workflow_id]["steps_completed"] == 0


def test_status_filter(idle_stack: Stack) -> None:
    idle_stack.api.enqueue()
    enqueued = [w for page in _all_pages(idle_stack, 50, status="enqueued") for w in page]
    assert enqueued and all(w["status"] == "ENQUEUED" for w in enqueued)
    assert _all_pages(idle_stack, 50, status="SUCCESS") == [[]]


def test_metrics_report_queue_depth_from_the_database(idle_stack: Stack) -> None:
    before = _enqueued_sample(idle_stack)
    for _ in range(3):
        idle_stack.api.enqueue()
    assert _enqueued_sample(idle_stack) == before + 3
    assert _enqueued_sample(idle_stack) == count_workflows(idle_stack.database_url)


def _enqueued_sample(stack: Stack) -> float:
    response = stack.api.http.get("/metrics")
    assert response.status_code == 200
    labels = {"queue": "workflow-queue", "status": "enqueued"}
    return sample(response.text, "queue_worker_queue_workflows", **labels) or 0.0


def test_concurrent_resumes_put_a_workflow_back_once(idle_stack: Stack) -> None:
    api = idle_stack.api
    workflow_id = api.enqueue()
    assert api.http.post(f"/workflows/{workflow_id}/cancel").status_code == 202
    barrier = threading.Barrier(4)

    def resume() -> int:
        with httpx.Client(base_url=api.url) as client:
            barrier.wait()
            return client.post(f"/workflows/{workflow_id}/resume").status_code

    with ThreadPoolExecutor(4) as pool:
        codes = sorted(pool.map(lambda _: resume(), range(4)))

    assert codes == [202, 409, 409, 409]
    assert api.workflow(workflow_id)["status"] == "ENQUEUED"


def test_the_load_is_reported_before_any_worker_has_started(idle_stack: Stack) -> None:
    # The migration registers the queue: a fleet scaled to zero is woken by this load (KEDA).
    idle_stack.api.enqueue()
    text = idle_stack.api.http.get("/metrics").text
    assert sample(text, "queue_worker_queue_worker_concurrency", queue=QUEUE_NAME) == 10
    enqueued = sample(text, "queue_worker_queue_workflows", queue=QUEUE_NAME, status="enqueued")
    assert enqueued is not None and enqueued >= 1
    assert sample(text, "queue_worker_queue_load", queue=QUEUE_NAME) == enqueued / 10

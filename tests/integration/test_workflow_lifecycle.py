"""Enqueue, progress, completion, cancel, resume and idempotency against real services."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.integration.conftest import Stack
from tests.support.databases import count_workflows
from tests.support.polling import wait_for


def test_workflow_progress_climbs_to_success(stack: Stack) -> None:
    api = stack.api
    response = api.http.post("/workflows", json={"num_steps": 5, "step_seconds": 0.3})
    assert response.status_code == 202
    workflow_id = response.json()["workflow_id"]
    assert response.headers["location"] == f"/workflows/{workflow_id}"

    seen: list[int] = []

    def finished() -> dict[str, object] | None:
        workflow = api.workflow(workflow_id)
        seen.append(int(str(workflow["steps_completed"])))
        return workflow if workflow["status"] == "SUCCESS" else None

    final = wait_for(finished, timeout=60, what="workflow to succeed")
    assert final["steps_completed"] == 5
    assert final["num_steps"] == 5
    assert final["queue"] == "workflow-queue"
    assert final["executor_id"] is not None and final["executor_id"] != "local"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert any(0 < s < 5 for s in seen), f"never saw intermediate progress: {seen}"


def test_empty_body_enqueues_the_ten_step_default(stack: Stack) -> None:
    api = stack.api
    # An empty body, declared as JSON (curl -X POST -H 'Content-Type: application/json').
    response = api.http.post("/workflows", headers={"Content-Type": "application/json"})
    assert response.status_code == 202
    workflow_id = response.json()["workflow_id"]
    workflow = api.workflow(workflow_id)
    assert workflow["num_steps"] == 10
    # It takes ten seconds; cancel it so the worker is free for the other tests.
    assert api.http.post(f"/workflows/{workflow_id}/cancel").status_code == 202


def test_cancel_stops_a_running_workflow_and_resume_finishes_it(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=20, step_seconds=0.2)
    wait_for(
        lambda: int(str(api.workflow(workflow_id)["steps_completed"])) >= 2,
        timeout=60,
        what="two steps done",
    )

    cancelled = api.http.post(f"/workflows/{workflow_id}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["status"] == "CANCELLED"
    assert api.workflow(workflow_id)["status"] == "CANCELLED"

    # The cancelled execution may still be inside its step: until its worker reports it
    # stopped, a resume is refused with a hint to retry.
    def resumed() -> httpx.Response | None:
        response = api.http.post(f"/workflows/{workflow_id}/resume")
        if response.status_code == 409:
            assert response.headers["retry-after"] == "1", response.headers
            assert "may still be inside a step" in response.json()["detail"]
            return None
        return response

    response = wait_for(resumed, timeout=30, interval=0.2, what="the resume to be accepted")
    assert response.status_code == 202, response.text
    # Back on its queue; a worker polling every 0.1 s may have claimed it already.
    assert response.json()["status"] in ("ENQUEUED", "PENDING")
    assert response.json()["queue"] == "workflow-queue"
    done = api.wait_status(workflow_id, "SUCCESS")
    assert done["steps_completed"] == done["num_steps"] == 20


def test_finished_workflows_cannot_be_cancelled_or_resumed(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=1, step_seconds=0)
    api.wait_status(workflow_id, "SUCCESS")
    for action in ("cancel", "resume"):
        response = api.http.post(f"/workflows/{workflow_id}/{action}")
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert "SUCCESS" in response.json()["detail"]
    assert api.workflow(workflow_id)["status"] == "SUCCESS"


def test_running_workflow_cannot_be_resumed(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=10, step_seconds=0.2)
    api.wait_status(workflow_id, "PENDING")
    response = api.http.post(f"/workflows/{workflow_id}/resume")
    assert response.status_code == 409
    assert "PENDING" in response.json()["detail"]
    api.http.post(f"/workflows/{workflow_id}/cancel")


def test_unknown_workflow_ids_are_404(stack: Stack) -> None:
    unknown = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/workflows/{unknown}"),
        ("POST", f"/workflows/{unknown}/cancel"),
        ("POST", f"/workflows/{unknown}/resume"),
    ]:
        response = stack.api.http.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert unknown in response.json()["detail"]


def test_idempotency_key_returns_the_same_workflow(stack: Stack) -> None:
    api = stack.api
    key = f"order-{uuid.uuid4()}"
    body = {"num_steps": 2, "step_seconds": 0}
    before = count_workflows(stack.database_url)

    first = api.http.post("/workflows", json=body, headers={"Idempotency-Key": key})
    second = api.http.post("/workflows", json=body, headers={"Idempotency-Key": key})

    assert first.status_code == second.status_code == 202
    assert first.json()["workflow_id"] == second.json()["workflow_id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotent-replayed"] == "true"
    assert count_workflows(stack.database_url) == before + 1
    api.wait_status(first.json()["workflow_id"], "SUCCESS")
    # Still the same workflow after it finished: a late retry does not run it again.
    third = api.http.post("/workflows", json=body, headers={"Idempotency-Key": key})
    assert third.json()["workflow_id"] == first.json()["workflow_id"]
    assert count_workflows(stack.database_url) == before + 1


def test_idempotency_key_reused_for_another_request_is_a_conflict(stack: Stack) -> None:
    api = stack.api
    key = f"order-{uuid.uuid4()}"
    first = api.http.post("/workflows", json={"num_steps": 2}, headers={"Idempotency-Key": key})
    assert first.status_code == 202
    before = count_workflows(stack.database_url)
    other = api.http.post("/workflows", json={"num_steps": 3}, headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert "Idempotency-Key" in other.json()["detail"]
    assert count_workflows(stack.database_url) == before
    api.http.post(f"/workflows/{first.json()['workflow_id']}/cancel")


def test_concurrent_requests_are_enqueued_together_each_with_its_own_outcome(
    idle_stack: Stack,
) -> None:
    """Requests that arrive together share a transaction; a shared key still makes one workflow."""
    api, url = idle_stack.api, idle_stack.database_url
    key = f"order-{uuid.uuid4()}"
    before = count_workflows(url)

    def post(index: int) -> httpx.Response:
        headers = {"Idempotency-Key": key} if index % 2 == 0 else {}
        # The odd ones differ from each other: none of them is a replay.
        body = {"num_steps": 2} if index % 2 == 0 else {"num_steps": 1 + index % 7}
        with httpx.Client(base_url=api.url, timeout=30) as client:
            return client.post("/workflows", json=body, headers=headers)

    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(post, range(48)))

    assert [r.status_code for r in responses] == [202] * 48
    keyed = [r for i, r in enumerate(responses) if i % 2 == 0]
    assert len({r.json()["workflow_id"] for r in keyed}) == 1
    assert sum("idempotent-replayed" not in r.headers for r in keyed) == 1
    others = [r.json()["workflow_id"] for i, r in enumerate(responses) if i % 2 == 1]
    assert len(set(others)) == 24
    assert count_workflows(url) == before + 25
    for index in (1, 3, 47):
        workflow = api.workflow(responses[index].json()["workflow_id"])
        assert workflow["num_steps"] == 1 + index % 7


def test_steps_of_a_finished_workflow_in_order_with_their_times(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=3, step_seconds=0)
    api.wait_status(workflow_id, "SUCCESS")
    response = api.http.get(f"/workflows/{workflow_id}/steps")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["workflow_id"] == workflow_id
    steps = body["steps"]
    assert [s["step_id"] for s in steps] == sorted({s["step_id"] for s in steps})
    demo_steps = [s for s in steps if s["name"].endswith("step")]
    assert len(demo_steps) == 3, [s["name"] for s in steps]
    for step in steps:
        assert step["status"] == "SUCCESS" and step["error"] is None, step
        assert step["started_at"] is not None and step["completed_at"] is not None, step
        assert step["started_at"] <= step["completed_at"]
    missing = api.http.get(f"/workflows/no-such-{uuid.uuid4()}/steps")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_a_queued_workflow_has_no_steps_yet(idle_stack: Stack) -> None:
    workflow_id = idle_stack.api.enqueue(num_steps=2)
    response = idle_stack.api.http.get(f"/workflows/{workflow_id}/steps")
    assert response.status_code == 200, response.text
    assert response.json() == {"workflow_id": workflow_id, "steps": []}

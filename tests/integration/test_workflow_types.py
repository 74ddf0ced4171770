"""The registry's types through the HTTP API, run by a real worker: both examples, the enqueue
options, and the listing's filters."""

import uuid
from typing import Any

from tests.integration.conftest import Stack
from tests.support.databases import count_workflows
from tests.support.polling import wait_for


def _listing(stack: Stack, **filters: str) -> list[dict[str, Any]]:
    response = stack.api.http.get("/workflows", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    workflows: list[dict[str, Any]] = response.json()["workflows"]
    return workflows


def test_the_types_are_listed_with_their_queues_and_schemas(stack: Stack) -> None:
    response = stack.api.http.get("/workflow-types")
    assert response.status_code == 200, response.text
    body = response.json()
    types = {t["name"]: t for t in body["workflow_types"]}
    assert body["default_workflow"] == "workflow"
    assert types["workflow"]["queue"] == "workflow-queue"
    assert types["fanout"]["input_schema"]["properties"]["items"]["type"] == "integer"
    assert types["fanout_item"]["partitioned"] is True
    queues = {q["name"]: q for q in body["queues"]}
    assert queues["fanout-items"]["limiter"] == {"limit": 20, "period_seconds": 1.0}


def test_a_fanout_runs_its_children_on_their_partitioned_queue(stack: Stack) -> None:
    api = stack.api
    parent = api.enqueue(workflow="fanout", input={"items": 6, "item_seconds": 0.05})
    assert api.workflow(parent)["workflow"] == "fanout"

    final = api.wait_status(parent, "SUCCESS", timeout=90)

    assert (final["steps_completed"], final["num_steps"]) == (6, 6)
    assert final["queue"] == "fanout"
    children = [w for w in _listing(stack, workflow="fanout_item") if w["partition_key"] == parent]
    assert len(children) == 6
    assert {c["status"] for c in children} == {"SUCCESS"}
    assert {c["queue"] for c in children} == {"fanout-items"}
    steps = api.http.get(f"/workflows/{parent}/steps").json()["steps"]
    started = {s["child_workflow_id"] for s in steps if s["child_workflow_id"]}
    assert started == {c["workflow_id"] for c in children}


def test_a_type_on_a_partitioned_queue_is_enqueued_with_its_key(stack: Stack) -> None:
    api = stack.api
    key = f"tenant-{uuid.uuid4().hex[:6]}"
    item = api.enqueue(workflow="fanout_item", input={"index": 3, "seconds": 0}, partition_key=key)
    final = api.wait_status(item, "SUCCESS")
    assert (final["partition_key"], final["queue"]) == (key, "fanout-items")
    assert [
        w["workflow_id"] for w in _listing(stack, queue="fanout-items") if w["partition_key"] == key
    ] == [item]


def test_a_delayed_workflow_waits_then_runs(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=1, step_seconds=0, delay_seconds=1.5)
    assert api.workflow(workflow_id)["status"] == "DELAYED"
    api.wait_status(workflow_id, "SUCCESS", timeout=30)


def test_a_workflow_past_its_timeout_is_cancelled(stack: Stack) -> None:
    api = stack.api
    workflow_id = api.enqueue(num_steps=50, step_seconds=0.1, timeout_seconds=0.5)
    final = api.wait_status(workflow_id, "CANCELLED", timeout=30)
    assert int(str(final["steps_completed"])) < 50


def test_a_held_deduplication_id_is_a_conflict_naming_its_holder(stack: Stack) -> None:
    api = stack.api
    dedup = f"report-{uuid.uuid4().hex[:6]}"
    holder = api.enqueue(num_steps=30, step_seconds=0.2, deduplication_id=dedup)
    before = count_workflows(stack.database_url)

    again = api.http.post("/workflows", json={"num_steps": 1, "deduplication_id": dedup})
    batch = api.http.post(
        "/workflows:batch",
        json={"workflows": [{"num_steps": 1}, {"num_steps": 1, "deduplication_id": dedup}]},
    )

    assert again.status_code == 409, again.text
    assert holder in again.json()["detail"]
    assert batch.status_code == 409, batch.text
    assert batch.json()["detail"].startswith("workflows.1.deduplication_id")
    assert count_workflows(stack.database_url) == before
    assert api.http.post(f"/workflows/{holder}/cancel").status_code == 202


def test_a_typed_workflow_resumes_on_its_types_queue(stack: Stack) -> None:
    api = stack.api
    parent = api.enqueue(workflow="fanout", input={"items": 3, "item_seconds": 0.5})
    api.wait_status(parent, "PENDING")
    assert api.http.post(f"/workflows/{parent}/cancel").status_code == 202

    def resumed() -> dict[str, Any] | None:
        response = api.http.post(f"/workflows/{parent}/resume")
        assert response.status_code in (202, 409), response.text
        return response.json() if response.status_code == 202 else None

    assert wait_for(resumed, timeout=30, interval=0.3, what="resume")["queue"] == "fanout"
    api.wait_status(parent, "SUCCESS", timeout=60)


def test_the_listing_filters_by_type_and_queue(stack: Stack) -> None:
    api = stack.api
    demo = api.enqueue(num_steps=1, step_seconds=0)
    fanout = api.enqueue(workflow="fanout", input={"items": 1, "item_seconds": 0})
    by_type = {w["workflow_id"] for w in _listing(stack, workflow="fanout")}
    by_queue = {w["workflow_id"] for w in _listing(stack, queue="workflow-queue")}
    assert fanout in by_type and demo not in by_type
    assert demo in by_queue and fanout not in by_queue
    assert _listing(stack, workflow="fanout", queue="workflow-queue") == []
    api.wait_status(fanout, "SUCCESS")


def test_a_cancelled_workflow_is_still_listed_under_its_queue(stack: Stack) -> None:
    # DBOS clears the queue of a cancelled workflow; the listing goes by the type's queue.
    api = stack.api
    parent = api.enqueue(workflow="fanout", input={"items": 2, "item_seconds": 5})
    assert api.http.post(f"/workflows/{parent}/cancel").status_code == 202
    listed = _listing(stack, queue="fanout", status="CANCELLED")
    assert parent in {w["workflow_id"] for w in listed}

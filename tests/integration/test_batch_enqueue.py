"""POST /workflows:batch: many workflows in one transaction, all or nothing, each idempotent."""

import uuid
from typing import Any

import pytest

from services.api import enqueue_bodies, schemas
from tests.integration.conftest import Stack
from tests.support.databases import count_workflows


def _batch(api: Any, *items: dict[str, Any]) -> Any:
    return api.http.post("/workflows:batch", json={"workflows": list(items)})


def test_a_batch_runs_to_success_in_priority_order_of_its_items(stack: Stack) -> None:
    api = stack.api
    key = f"batch-{uuid.uuid4()}"
    response = _batch(
        api,
        {"num_steps": 1, "step_seconds": 0},
        {"num_steps": 2, "step_seconds": 0, "priority": 5},
        {"num_steps": 3, "step_seconds": 0, "idempotency_key": key},
    )
    assert response.status_code == 202, response.text
    enqueued = response.json()["workflows"]
    assert [w["replayed"] for w in enqueued] == [False, False, False]
    assert [w["url"] for w in enqueued] == [f"/workflows/{w['workflow_id']}" for w in enqueued]
    done = [api.wait_status(w["workflow_id"], "SUCCESS") for w in enqueued]
    assert [w["num_steps"] for w in done] == [1, 2, 3]
    assert [w["steps_completed"] for w in done] == [1, 2, 3]
    assert [w["priority"] for w in done] == [0, 5, 0]
    # The item's key names the same workflow the Idempotency-Key header does.
    again = api.http.post(
        "/workflows",
        json={"num_steps": 3, "step_seconds": 0},
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["workflow_id"] == enqueued[2]["workflow_id"]


def test_replaying_a_batch_enqueues_only_its_items_without_a_key(idle_stack: Stack) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    keyed: dict[str, Any] = {
        "num_steps": 2,
        "step_seconds": 0.5,
        "idempotency_key": f"k-{uuid.uuid4()}",
    }
    items = [keyed, {"num_steps": 1, "step_seconds": 0}]
    first = _batch(api, *items)
    assert first.status_code == 202, first.text
    before = count_workflows(url)
    replay = _batch(api, *items)
    assert replay.status_code == 202, replay.text
    assert [w["replayed"] for w in replay.json()["workflows"]] == [True, False]
    ids = [[w["workflow_id"] for w in r.json()["workflows"]] for r in (first, replay)]
    assert ids[1][0] == ids[0][0] and ids[1][1] != ids[0][1]
    assert count_workflows(url) == before + 1


def test_a_key_reused_for_another_request_fails_the_whole_batch(idle_stack: Stack) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    key = f"k-{uuid.uuid4()}"
    assert _batch(api, {"num_steps": 2, "idempotency_key": key}).status_code == 202
    before = count_workflows(url)
    response = _batch(
        api,
        {"num_steps": 1},
        {"num_steps": 1},
        {"num_steps": 3, "idempotency_key": key},
    )
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "workflows.2.idempotency_key" in response.json()["detail"]
    assert count_workflows(url) == before


def test_a_thousand_workflows_in_one_request(idle_stack: Stack) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    before = count_workflows(url)
    items = [
        {"num_steps": 1 + i % 5, "step_seconds": 0} for i in range(enqueue_bodies.MAX_BATCH_SIZE)
    ]
    response = _batch(api, *items)
    assert response.status_code == 202, response.text
    enqueued = response.json()["workflows"]
    assert len({w["workflow_id"] for w in enqueued}) == enqueue_bodies.MAX_BATCH_SIZE
    assert count_workflows(url) == before + enqueue_bodies.MAX_BATCH_SIZE
    # Each one reads back with its own input.
    for index in (0, 1, 998, 999):
        assert api.workflow(enqueued[index]["workflow_id"])["num_steps"] == 1 + index % 5
    listed = api.http.get("/workflows", params={"status": "ENQUEUED", "limit": 500})
    assert listed.status_code == 200
    assert len(listed.json()["workflows"]) == 500


BAD_BATCHES = [
    pytest.param({"workflows": []}, "workflows", id="empty"),
    pytest.param({}, "workflows", id="missing"),
    pytest.param(
        {"workflows": [{"num_steps": 1}] * (enqueue_bodies.MAX_BATCH_SIZE + 1)},
        "workflows",
        id="1001",
    ),
    pytest.param({"workflows": [{}, {}, {"num_steps": 0}]}, "workflows.2.num_steps", id="bad-item"),
    pytest.param({"workflows": [{"colour": "red"}]}, "workflows.0.colour", id="unknown-field"),
    pytest.param(
        {"workflows": [{"idempotency_key": "has space"}]},
        "workflows.0.idempotency_key",
        id="bad-key",
    ),
    pytest.param(
        {"workflows": [{"idempotency_key": "a"}, {}, {"idempotency_key": "a"}]},
        "workflows.2.idempotency_key",
        id="repeated-key",
    ),
    pytest.param({"workflows": {"num_steps": 1}}, "workflows", id="not-a-list"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BATCHES)
def test_bad_batches_name_the_field_and_enqueue_nothing(
    idle_stack: Stack, body: dict[str, Any], field: str
) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    before = count_workflows(url)
    response = api.http.post("/workflows:batch", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]
    assert count_workflows(url) == before


def test_transport_rules_of_the_batch_route(idle_stack: Stack) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    before = count_workflows(url)
    body = '{"workflows": [{}]}'
    text = api.http.post("/workflows:batch", content=body, headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    cross = api.http.post(
        "/workflows:batch",
        content=body,
        headers={"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
    )
    assert cross.status_code == 403
    huge = api.http.post(
        "/workflows:batch",
        content=b"{" + b" " * schemas.MAX_BATCH_BODY_BYTES + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    broken = api.http.post(
        "/workflows:batch", content=b'{"workflows": [', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    get = api.http.get("/workflows:batch")
    assert get.status_code == 405 and get.headers["allow"] == "POST"
    assert count_workflows(url) == before
    # The single enqueue keeps its own, smaller limit.
    big = {"num_steps": 1, "pad": " " * schemas.MAX_BODY_BYTES}
    assert api.http.post("/workflows", json=big).status_code == 413
    assert count_workflows(url) == before


def test_a_held_deduplication_id_is_blamed_on_its_item_not_on_a_replayed_one(
    idle_stack: Stack,
) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    tag = uuid.uuid4().hex[:8]
    mine = {"num_steps": 1, "idempotency_key": f"mine-{tag}", "deduplication_id": f"d-{tag}"}
    assert _batch(api, mine).status_code == 202
    holder = api.enqueue(num_steps=1, deduplication_id=f"e-{tag}")
    before = count_workflows(url)

    response = _batch(api, mine, {"num_steps": 1, "deduplication_id": f"e-{tag}"})

    assert response.status_code == 409, response.text
    assert response.json()["detail"].startswith("workflows.1.deduplication_id"), response.text
    assert holder in response.json()["detail"]
    assert count_workflows(url) == before


def test_a_retry_with_other_options_is_a_conflict_not_a_replay(idle_stack: Stack) -> None:
    api, url = idle_stack.api, idle_stack.database_url
    key = {"Idempotency-Key": f"options-{uuid.uuid4()}"}
    first = api.http.post("/workflows", json={"num_steps": 2}, headers=key)
    assert first.status_code == 202, first.text
    spelled_out = api.http.post("/workflows", json={"num_steps": 2, "step_seconds": 1}, headers=key)
    assert spelled_out.status_code == 202, spelled_out.text
    assert spelled_out.headers["Idempotent-Replayed"] == "true"
    before = count_workflows(url)

    for options in ({"timeout_seconds": 5}, {"delay_seconds": 100}, {"deduplication_id": "x"}):
        retry = api.http.post("/workflows", json={"num_steps": 2, **options}, headers=key)
        assert retry.status_code == 409, (options, retry.text)
    assert count_workflows(url) == before

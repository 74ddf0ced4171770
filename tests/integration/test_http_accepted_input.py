"""Input at the edge of the rules that must still be accepted: what the guards let through."""

import uuid

import pytest

from tests.integration.conftest import Stack
from tests.support.databases import count_workflows


def test_integral_floats_are_integers(idle_stack: Stack) -> None:
    # JSON Schema's integer (what the OpenAPI document says) includes 5229.0.
    response = idle_stack.api.http.post("/workflows", json={"num_steps": 3.0, "priority": 5229.0})

    assert response.status_code == 202, response.text
    workflow = idle_stack.api.workflow(response.json()["workflow_id"])
    assert workflow["priority"] == 5229
    assert workflow["num_steps"] == 3
    assert isinstance(workflow["num_steps"], int)


def test_an_integral_float_retry_is_the_same_request(idle_stack: Stack) -> None:
    key = {"Idempotency-Key": f"integral-{uuid.uuid4()}"}
    first = idle_stack.api.http.post("/workflows", json={"num_steps": 5}, headers=key)
    assert first.status_code == 202, first.text

    retry = idle_stack.api.http.post("/workflows", json={"num_steps": 5.0}, headers=key)

    assert retry.status_code == 202, retry.text
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["workflow_id"] == first.json()["workflow_id"]


@pytest.mark.parametrize(
    "headers",
    [
        {"content-type": "application/json"},
        {"content-type": "Application/JSON; charset=utf-8"},
        {"content-type": "application/json", "sec-fetch-site": "same-origin"},
        {"content-type": "application/json", "sec-fetch-site": "none"},
        # The progress page, and a client behind a proxy that keeps the Host.
        {"content-type": "application/json", "origin": "http://{host}"},
        # The browser says same-origin: a proxy that rewrote the Host does not matter.
        {
            "content-type": "application/json",
            "origin": "https://jobs.example.com",
            "sec-fetch-site": "same-origin",
        },
    ],
)
def test_an_empty_post_enqueues_the_default_workflow(
    idle_stack: Stack, headers: dict[str, str]
) -> None:
    before = count_workflows(idle_stack.database_url)

    host = idle_stack.api.url.removeprefix("http://")
    headers = {name: value.replace("{host}", host) for name, value in headers.items()}
    response = idle_stack.api.http.post("/workflows", headers=headers)

    assert response.status_code == 202, response.text
    assert count_workflows(idle_stack.database_url) == before + 1


def test_a_long_workflow_id_within_the_rule_is_looked_up(idle_stack: Stack) -> None:
    # 255 characters, not a UUID, not ASCII: a valid id that names no workflow.
    response = idle_stack.api.http.get("/workflows/" + "é" * 255)

    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_head_is_served_where_get_is(idle_stack: Stack) -> None:
    response = idle_stack.api.http.head("/workflows")

    assert response.status_code == 200
    assert response.content == b""

"""Bad input of every kind gets a 4xx problem saying what is wrong, and enqueues nothing."""

from typing import Any

import pytest

from tests.integration.conftest import Stack
from tests.support.databases import count_workflows

JSON = {"content-type": "application/json"}

# (method, path, request kwargs, status, words the detail must contain)
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/workflows", {"content": b"{bad", "headers": JSON}, 400, "JSON"),
    ("POST", "/workflows", {"content": b"[1, 2]", "headers": JSON}, 422, "object"),
    ("POST", "/workflows", {"json": {"num_steps": "5"}}, 422, "num_steps"),
    ("POST", "/workflows", {"json": {"num_steps": 2.5}}, 422, "num_steps"),
    ("POST", "/workflows", {"json": {"num_steps": True}}, 422, "num_steps"),
    ("POST", "/workflows", {"json": {"num_steps": 0}}, 422, "greater than or equal to 1"),
    ("POST", "/workflows", {"json": {"num_steps": 1001}}, 422, "less than or equal to 1000"),
    ("POST", "/workflows", {"json": {"step_seconds": -1}}, 422, "step_seconds"),
    ("POST", "/workflows", {"json": {"step_seconds": 61}}, 422, "step_seconds"),
    ("POST", "/workflows", {"content": b'{"step_seconds": NaN}', "headers": JSON}, 422, "finite"),
    ("POST", "/workflows", {"json": {"priority": 0}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"priority": 2**31}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"num_step": 5}}, 422, "num_step"),
    ("POST", "/workflows", {"content": b"x" * 20000, "headers": JSON}, 413, "larger than"),
    ("POST", "/workflows", {"content": b"num_steps=5"}, 415, "application/json"),
    ("POST", "/workflows", {"headers": {"Idempotency-Key": "has space"}}, 400, "Idempotency-Key"),
    ("POST", "/workflows", {"headers": {"Idempotency-Key": "k" * 256}}, 400, "Idempotency-Key"),
    ("GET", "/workflows?limit=0", {}, 400, "limit"),
    ("GET", "/workflows?limit=501", {}, 400, "limit"),
    ("GET", "/workflows?limit=ten", {}, 400, "limit"),
    ("GET", "/workflows?status=DONE", {}, 400, "status"),
    ("GET", "/workflows?cursor=not-a-cursor", {}, 400, "cursor"),
    ("GET", "/workflows?cursor=WzEsMl0", {}, 400, "cursor"),
    ("DELETE", "/workflows", {}, 405, "DELETE"),
    ("GET", "/nowhere", {}, 404, "/nowhere"),
    ("GET", "/static/secrets.txt", {}, 404, "secrets.txt"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), BAD_REQUESTS)
def test_bad_request_is_a_clear_problem_and_enqueues_nothing(
    idle_stack: Stack, method: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    before = count_workflows(idle_stack.database_url)

    response = idle_stack.api.http.request(method, path, **kwargs)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert words in problem["detail"], problem
    assert count_workflows(idle_stack.database_url) == before

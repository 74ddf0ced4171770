"""Bad input of every kind gets a 4xx problem saying what is wrong, and enqueues nothing."""

import base64
import json
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Stack
from tests.support.databases import count_workflows

JSON = {"content-type": "application/json"}
CROSS_SITE = {"sec-fetch-site": "cross-site"}
SAME_SITE = {"sec-fetch-site": "same-site"}
ID_RULE = "workflow id must be"


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _json_cursor(value: object) -> str:
    return _cursor(json.dumps(value).encode())


LONE_SURROGATE_CURSOR = _cursor(b'[1,"\\ud800"]')
VALID_CURSOR = _json_cursor([1, "x"])


# (method, path, request kwargs, status, words the detail must contain)
BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int, str]] = [
    ("POST", "/workflows", {"content": b"{bad", "headers": JSON}, 400, "JSON"),
    ("POST", "/workflows", {"content": b"[1, 2]", "headers": JSON}, 422, "object"),
    ("POST", "/workflows", {"json": {"num_steps": "5"}}, 422, "num_steps"),
    ("POST", "/workflows", {"json": {"num_steps": 2.5}}, 422, "num_steps"),
    ("POST", "/workflows", {"json": {"num_steps": True}}, 422, "num_steps"),
    (
        "POST",
        "/workflows",
        {"json": {"num_steps": 0}},
        422,
        "num_steps: 0 is less than the minimum of 1",
    ),
    ("POST", "/workflows", {"json": {"num_steps": 1001}}, 422, "greater than the maximum of 1000"),
    ("POST", "/workflows", {"json": {"step_seconds": -1}}, 422, "step_seconds"),
    ("POST", "/workflows", {"json": {"step_seconds": 61}}, 422, "step_seconds"),
    ("POST", "/workflows", {"content": b'{"step_seconds": NaN}', "headers": JSON}, 422, "finite"),
    ("POST", "/workflows", {"json": {"priority": 0}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"priority": 2**31}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"num_step": 5}}, 422, "num_step"),
    ("POST", "/workflows", {"content": b"x" * 20000, "headers": JSON}, 413, "larger than"),
    ("POST", "/workflows", {"content": b"num_steps=5"}, 415, "application/json"),
    (
        "POST",
        "/workflows",
        {"headers": {**JSON, "Idempotency-Key": "has space"}},
        400,
        "Idempotency-Key",
    ),
    (
        "POST",
        "/workflows",
        {"headers": {**JSON, "Idempotency-Key": "k" * 256}},
        400,
        "Idempotency-Key",
    ),
    ("GET", "/workflows?limit=0", {}, 400, "limit"),
    ("GET", "/workflows?limit=501", {}, 400, "limit"),
    ("GET", "/workflows?limit=ten", {}, 400, "limit"),
    ("GET", "/workflows?status=DONE", {}, 400, "status"),
    ("GET", "/workflows?cursor=not-a-cursor", {}, 400, "cursor"),
    ("GET", "/workflows?cursor=WzEsMl0", {}, 400, "cursor"),
    ("DELETE", "/workflows", {}, 405, "DELETE"),
    ("GET", "/nowhere", {}, 404, "/nowhere"),
    ("GET", "/static/secrets.txt", {}, 404, "secrets.txt"),
    # Cursor numbers outside PostgreSQL's bigint (and SQLite's integer) range.
    ("GET", f"/workflows?cursor={_json_cursor([99999999999999999999, 'x'])}", {}, 400, "cursor"),
    ("GET", f"/workflows?cursor={_json_cursor([-(2**63) - 1, 'x'])}", {}, 400, "cursor"),
    ("GET", f"/workflows?cursor={_json_cursor([True, 'x'])}", {}, 400, "cursor"),
    # Text the databases cannot store: NUL, a lone surrogate.
    ("GET", f"/workflows?cursor={_json_cursor([1, 'a' + chr(0) + 'b'])}", {}, 400, "cursor"),
    ("GET", f"/workflows?cursor={LONE_SURROGATE_CURSOR}", {}, 400, "cursor"),
    ("GET", f"/workflows?cursor={_cursor(b'[' * 5000)}", {}, 400, "cursor"),
    ("GET", "/workflows/a%00b", {}, 400, ID_RULE),
    ("POST", "/workflows/a%00b/cancel", {}, 400, ID_RULE),
    ("POST", "/workflows/a%00b/resume", {}, 400, ID_RULE),
    ("GET", "/workflows/a%01b", {}, 400, ID_RULE),
    ("GET", "/workflows/a%C2%85b", {}, 400, ID_RULE),
    ("GET", "/workflows/" + "x" * 256, {}, 400, ID_RULE),
    # Only ASCII digits are a limit; only ASCII letters a status.
    ("GET", "/workflows?limit=%C2%B2", {}, 400, "limit"),
    ("GET", "/workflows?limit=%EF%BC%95", {}, 400, "limit"),
    ("GET", "/workflows?limit=" + "0" * 5000 + "1", {}, 400, "limit"),
    ("GET", "/workflows?status=%C5%BFuccess", {}, 400, "status"),
    ("GET", "/workflows?limit=1&limit=2", {}, 400, "limit"),
    ("GET", "/workflows?status=PENDING&status=SUCCESS", {}, 400, "status"),
    ("GET", f"/workflows?cursor={VALID_CURSOR}&cursor={VALID_CURSOR}", {}, 400, "cursor"),
    # A declared Content-Type other than JSON is refused even without a body (HTML forms).
    (
        "POST",
        "/workflows",
        {"headers": {"content-type": "application/x-www-form-urlencoded"}},
        415,
        "application/json",
    ),
    (
        "POST",
        "/workflows",
        {"headers": {"content-type": "multipart/form-data; boundary=x"}},
        415,
        "application/json",
    ),
    ("POST", "/workflows", {"headers": {"content-type": "text/plain"}}, 415, "application/json"),
    ("POST", "/workflows", {"headers": {"content-type": ""}}, 415, "application/json"),
    (
        "POST",
        "/workflows/unknown/cancel",
        {"headers": {"content-type": "text/plain"}},
        415,
        "application/json",
    ),
    (
        "POST",
        "/workflows/unknown/resume",
        {"headers": {"content-type": "text/plain"}},
        415,
        "application/json",
    ),
    # Browsers say when a request comes from another site; such a request changes nothing.
    ("POST", "/workflows", {"headers": CROSS_SITE}, 403, "cross-site"),
    ("POST", "/workflows", {"json": {}, "headers": CROSS_SITE}, 403, "cross-site"),
    ("POST", "/workflows/unknown/cancel", {"headers": CROSS_SITE}, 403, "cross-site"),
    ("POST", "/workflows/unknown/resume", {"headers": CROSS_SITE}, 403, "cross-site"),
    # A sibling site (another port of the host, another subdomain) is another site too, and a
    # page's Origin must be the API's own.
    ("POST", "/workflows", {"json": {}, "headers": SAME_SITE}, 403, "same-site"),
    ("POST", "/workflows/unknown/cancel", {"headers": SAME_SITE}, 403, "same-site"),
    (
        "POST",
        "/workflows",
        {"json": {}, "headers": {"origin": "http://evil.example"}},
        403,
        "Origin http://evil.example is not this API's",
    ),
    ("POST", "/workflows", {"json": {}, "headers": {"origin": "null"}}, 403, "Origin null"),
    # An enqueue declares its JSON even with no body: a simple cross-site POST can't.
    ("POST", "/workflows", {}, 415, "even with an empty body"),
    ("POST", "/workflows:batch", {}, 415, "application/json"),
    # Integral floats are integers; fractions, strings, booleans and NaN are not.
    ("POST", "/workflows", {"json": {"priority": 2.5}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"priority": "5"}}, 422, "priority"),
    ("POST", "/workflows", {"json": {"priority": True}}, 422, "priority"),
    ("POST", "/workflows", {"content": b'{"priority": NaN}', "headers": JSON}, 422, "priority"),
    (
        "POST",
        "/workflows",
        {"json": {"num_steps": 1001.0}},
        422,
        "greater than the maximum of 1000",
    ),
    # Against the registry: the type, its input schema, what its queue takes.
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "nope"}},
        422,
        "workflow: no workflow type 'nope'",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "fanout", "input": {"items": 0}}},
        422,
        "input.items",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "fanout", "input": {"itemz": 1}}},
        422,
        "input.itemz",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "fanout", "items": 1}},
        422,
        "items: unknown field",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "fanout", "partition_key": "p"}},
        422,
        "partition_key: queue 'fanout' is not partitioned",
    ),
    (
        "POST",
        "/workflows",
        {"json": {"workflow": "fanout_item", "input": {"index": 1}}},
        422,
        "partition_key: required",
    ),
    (
        "POST",
        "/workflows",
        {
            "json": {
                "workflow": "fanout_item",
                "input": {"index": 1},
                "partition_key": "p",
                "deduplication_id": "d",
            }
        },
        422,
        "deduplication_id",
    ),
    ("POST", "/workflows", {"json": {"delay_seconds": -1}}, 422, "delay_seconds"),
    ("POST", "/workflows", {"json": {"timeout_seconds": 0}}, 422, "timeout_seconds"),
    ("GET", "/workflows?workflow=bad%20name", {}, 400, "workflow"),
    ("GET", "/workflows?queue=" + "q" * 101, {}, 400, "queue"),
    ("GET", "/workflows?queue=a&queue=b", {}, 400, "queue"),
    ("GET", "/workflows?queue=nope", {}, 400, "queue 'nope' is not in the registry"),
    # Header bytes that are not ASCII.
    (
        "POST",
        "/workflows",
        {"headers": {**JSON, "Idempotency-Key": "é".encode() * 300}},
        400,
        "Idempotency-Key",
    ),
    (
        "POST",
        "/workflows",
        {"headers": {**JSON, "Idempotency-Key": "clé".encode("latin-1")}},
        400,
        "Idempotency-Key",
    ),
]

# (method, path, the methods its Allow header must list)
ALLOWED_METHODS = [
    ("DELETE", "/workflows", {"GET", "HEAD", "POST"}),
    ("PUT", "/workflows", {"GET", "HEAD", "POST"}),
    ("DELETE", "/workflows/some-id", {"GET", "HEAD"}),
    ("GET", "/workflows/some-id/cancel", {"POST"}),
    ("GET", "/workflows/some-id/resume", {"POST"}),
    ("POST", "/healthz", {"GET", "HEAD"}),
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


def _local_address(response: httpx.Response) -> object:
    return response.extensions["network_stream"].get_extra_info("client_addr")


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "words"), BAD_REQUESTS)
def test_bad_request_leaves_the_connection_usable(
    idle_stack: Stack, method: str, path: str, kwargs: dict[str, Any], status: int, words: str
) -> None:
    # A 500 makes the server drop the connection, so the next request needs a new one.
    with httpx.Client(base_url=idle_stack.api.url, timeout=30) as client:
        bad = client.request(method, path, **kwargs)
        assert bad.status_code == status, bad.text
        used = _local_address(bad)
        good = client.get("/healthz")

        assert good.status_code == 200
        assert _local_address(good) == used, "the connection was not reused"


@pytest.mark.parametrize(("method", "path", "allowed"), ALLOWED_METHODS)
def test_method_not_allowed_lists_every_method_the_path_serves(
    idle_stack: Stack, method: str, path: str, allowed: set[str]
) -> None:
    before = count_workflows(idle_stack.database_url)

    response = idle_stack.api.http.request(method, path)

    assert response.status_code == 405, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    assert count_workflows(idle_stack.database_url) == before

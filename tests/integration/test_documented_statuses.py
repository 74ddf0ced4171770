"""Every status the OpenAPI document declares for an operation is one the API really answers
with there: a request that gets each, the database-down ones from an API whose database does
not answer. Together with the fuzz test (no status the document does not declare), the
document and the API agree both ways."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.api import auth
from services.api.openapi import openapi_document
from tests.conftest import NewDatabase
from tests.support.history import insert_workflows
from tests.support.processes import Api

pytestmark = pytest.mark.postgres
BIG = {"num_steps": 1, "padding": "x" * (17 * 1024)}


@dataclass
class Ctx:
    live: Api
    dead: Api
    operator: str
    reader: str
    enqueued: str
    cancelled: str
    finished: str

    def call(
        self,
        method: str,
        path: str,
        token: str | None = "operator",
        dead: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        api = self.dead if dead else self.live
        headers = dict(kwargs.pop("headers", {}))
        if token == "operator":
            headers.setdefault("Authorization", f"Bearer {self.operator}")
        elif token == "reader":
            headers.setdefault("Authorization", f"Bearer {self.reader}")
        if method == "POST" and "json" not in kwargs and "content" not in kwargs:
            headers.setdefault("Content-Type", "application/json")
        return api.http.request(method, path, headers=headers, **kwargs)


Request = Callable[[Ctx], httpx.Response]
MALFORMED = {"Authorization": "Basic abc"}


def _common(method: str, path: str, body: Any = None) -> dict[str, Request]:
    """The statuses every protected operation shares (`body`: a valid one, if it takes one)."""
    extra: dict[str, Any] = {} if body is None else {"json": body}
    requests: dict[str, Request] = {
        "400": lambda c: c.call(method, path, token=None, headers=MALFORMED),
        "401": lambda c: c.call(method, path, token=None),
        "503": lambda c: c.call(method, path, dead=True, **extra),
    }
    if method == "POST":
        requests["403"] = lambda c: c.call(method, path, token="reader")
        requests["415"] = lambda c: c.call(
            method, path, content=b"x=1", headers={"Content-Type": "text/plain"}
        )
    return requests


def _requests() -> dict[tuple[str, str], dict[str, Request]]:
    wid = "/workflows/{workflow_id}"
    return {
        ("POST", "/workflows"): {
            **_common("POST", "/workflows", {}),
            "202": lambda c: c.call("POST", "/workflows", json={}),
            "409": lambda c: (
                c.call("POST", "/workflows", json={}, headers={"Idempotency-Key": "k-409"}),
                c.call(
                    "POST",
                    "/workflows",
                    json={"num_steps": 3},
                    headers={"Idempotency-Key": "k-409"},
                ),
            )[1],
            "413": lambda c: c.call("POST", "/workflows", json=BIG),
            "422": lambda c: c.call("POST", "/workflows", json={"num_steps": -1}),
        },
        ("GET", "/workflows"): {
            **_common("GET", "/workflows"),
            "200": lambda c: c.call("GET", "/workflows", token="reader"),
        },
        ("POST", "/workflows:batch"): {
            **_common("POST", "/workflows:batch", {"workflows": [{}]}),
            "202": lambda c: c.call("POST", "/workflows:batch", json={"workflows": [{}]}),
            "409": lambda c: (
                c.call(
                    "POST", "/workflows:batch", json={"workflows": [{"idempotency_key": "b-409"}]}
                ),
                c.call(
                    "POST",
                    "/workflows:batch",
                    json={"workflows": [{"idempotency_key": "b-409", "num_steps": 4}]},
                ),
            )[1],
            "413": lambda c: c.call(
                "POST",
                "/workflows:batch",
                content=b"{" + b" " * (1024 * 1024 + 1) + b"}",
                headers={"Content-Type": "application/json"},
            ),
            "422": lambda c: c.call("POST", "/workflows:batch", json={"workflows": []}),
        },
        ("GET", wid): {
            **_common("GET", f"/workflows/{'x' * 8}"),
            "200": lambda c: c.call("GET", f"/workflows/{c.enqueued}"),
            "400": lambda c: c.call("GET", "/workflows/" + "x" * 256),
            "404": lambda c: c.call("GET", "/workflows/nope"),
        },
        ("GET", f"{wid}/steps"): {
            **_common("GET", "/workflows/nope/steps"),
            "200": lambda c: c.call("GET", f"/workflows/{c.enqueued}/steps"),
            "400": lambda c: c.call("GET", "/workflows/" + "x" * 256 + "/steps"),
            "404": lambda c: c.call("GET", "/workflows/nope/steps"),
        },
        ("POST", f"{wid}/cancel"): {
            **_common("POST", "/workflows/nope/cancel"),
            "202": lambda c: c.call("POST", f"/workflows/{c.enqueued}/cancel"),
            "400": lambda c: c.call("POST", "/workflows/" + "x" * 256 + "/cancel"),
            "404": lambda c: c.call("POST", "/workflows/nope/cancel"),
            "409": lambda c: c.call("POST", f"/workflows/{c.finished}/cancel"),
        },
        ("POST", f"{wid}/resume"): {
            **_common("POST", "/workflows/nope/resume"),
            "202": lambda c: c.call("POST", f"/workflows/{c.cancelled}/resume"),
            "400": lambda c: c.call("POST", "/workflows/" + "x" * 256 + "/resume"),
            "404": lambda c: c.call("POST", "/workflows/nope/resume"),
            "409": lambda c: c.call("POST", f"/workflows/{c.finished}/resume"),
        },
        ("GET", "/"): {"200": lambda c: c.call("GET", "/", token=None)},
        ("GET", "/static/{name}"): {
            "200": lambda c: c.call("GET", "/static/app.js", token=None),
            "404": lambda c: c.call("GET", "/static/nope.js", token=None),
        },
        ("GET", "/audit"): {
            **_common("GET", "/audit"),
            "200": lambda c: c.call("GET", "/audit", token="reader"),
            "400": lambda c: c.call("GET", "/audit?cursor=x", token="reader"),
        },
        ("GET", "/executors"): {
            **_common("GET", "/executors"),
            "200": lambda c: c.call("GET", "/executors", token="reader"),
        },
        ("GET", "/healthz"): {"200": lambda c: c.call("GET", "/healthz", token=None)},
        ("GET", "/readyz"): {
            "200": lambda c: c.call("GET", "/readyz", token=None),
            "503": lambda c: c.call("GET", "/readyz", token=None, dead=True),
        },
        ("GET", "/metrics"): {"200": lambda c: c.call("GET", "/metrics", token=None)},
        ("GET", "/workflow-types"): {
            "200": lambda c: c.call("GET", "/workflow-types", token="reader"),
            "400": lambda c: c.call("GET", "/workflow-types", token=None, headers=MALFORMED),
            "401": lambda c: c.call("GET", "/workflow-types", token=None),
        },
        ("GET", "/openapi.json"): {"200": lambda c: c.call("GET", "/openapi.json", token=None)},
    }


@pytest.fixture
def ctx(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Ctx]:
    url = new_migrated_database("postgres")
    insert_workflows(url, finished=1, enqueued=0)
    operator, operator_line = auth.new_token("ops", "operate")
    reader, reader_line = auth.new_token("dashboard", "read")
    (tmp_path / "tokens").write_text(f"{operator_line}\n{reader_line}\n")
    env = {"API_AUTH": "tokens", "API_AUTH_TOKENS_FILE": str(tmp_path / "tokens")}
    live = Api(url, tmp_path, **env)
    # A database that never answers: every route that needs it answers 503.
    dead = Api("postgresql://postgres@127.0.0.1:1/nowhere", tmp_path, **env)
    try:
        live.wait_ready()
        dead.wait_listening()
        headers = {"Authorization": f"Bearer {operator}", "Content-Type": "application/json"}
        enqueued, cancelled = (
            live.http.post("/workflows", json={}, headers=headers).json()["workflow_id"]
            for _ in range(2)
        )
        assert live.http.post(f"/workflows/{cancelled}/cancel", headers=headers).status_code == 202
        yield Ctx(live, dead, operator, reader, enqueued, cancelled, "f-1")
    finally:
        live.stop()
        dead.stop()


def test_every_documented_status_is_answered(ctx: Ctx) -> None:
    requests = _requests()
    documented = {
        (method.upper(), path): set(operation["responses"])
        for path, operations in openapi_document()["paths"].items()
        for method, operation in operations.items()
    }
    assert set(requests) == set(documented)
    for operation, statuses in documented.items():
        assert set(requests[operation]) == statuses, operation
        for status, request in requests[operation].items():
            answer = request(ctx)
            assert str(answer.status_code) == status, (operation, status, answer.text[:300])

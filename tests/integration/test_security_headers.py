"""Every answer of the API carries its security headers: no sniffing, no framing, no Referer,
and a Content-Security-Policy (the page's allows only its own files)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NewDatabase
from tests.support.processes import Api

WID = "0f8fad5b-d9cb-469f-a165-70867728950e"
COMMON = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture
def api(new_migrated_database: NewDatabase, tmp_path: Path) -> Iterator[Api]:
    api = Api(new_migrated_database("sqlite"), tmp_path)
    api.wait_ready()
    yield api
    api.stop()


def test_every_kind_of_answer_carries_the_headers(api: Api) -> None:
    answers = {
        "a list": api.http.get("/workflows"),
        "a 404": api.http.get(f"/workflows/{WID}"),
        "a 404 of no route": api.http.get("/nowhere"),
        "a 405": api.http.delete("/workflows"),
        "a 415": api.http.post(
            "/workflows", content=b"x=1", headers={"content-type": "text/plain"}
        ),
        "a 422": api.http.post("/workflows", json={"num_steps": -1}),
        "metrics": api.http.get("/metrics"),
        "a static file": api.http.get("/static/app.js"),
        "the page": api.http.get("/"),
    }
    for what, answer in answers.items():
        headers = {name: answer.headers.get(name) for name in COMMON}
        assert headers == COMMON, what
        policy = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, what
    assert answers["a list"].headers["content-security-policy"] == (
        "default-src 'none'; frame-ancestors 'none'"
    )
    # The page loads its own scripts and styles, nothing else.
    assert answers["the page"].headers["content-security-policy"].startswith("default-src 'self'")

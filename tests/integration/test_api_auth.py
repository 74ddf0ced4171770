"""Who may call the API (API_AUTH=tokens): every route for no token, a bad token, role read
and role operate; rotation without a restart; who enqueued, recorded with the workflow; and
tokens never shown in answers or logs."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.api import auth
from tests.conftest import NewDatabase
from tests.support.polling import wait_for
from tests.support.processes import REPO_ROOT, Api

WID = "0f8fad5b-d9cb-469f-a165-70867728950e"
# Every route: (method, path, needs a token). The page, probes, metrics and the API's
# description are public; they hold no workflow data.
ROUTES = [
    ("GET", "/", False),
    ("GET", "/static/app.js", False),
    ("GET", "/healthz", False),
    ("GET", "/readyz", False),
    ("GET", "/metrics", False),
    ("GET", "/openapi.json", False),
    ("GET", "/workflows", True),
    ("GET", f"/workflows/{WID}", True),
    ("GET", f"/workflows/{WID}/steps", True),
    ("GET", "/workflow-types", True),
    ("GET", "/executors", True),
    ("GET", "/audit", True),
    ("POST", "/workflows", True),
    ("POST", "/workflows:batch", True),
    ("POST", f"/workflows/{WID}/cancel", True),
    ("POST", f"/workflows/{WID}/resume", True),
]
BODIES = {
    "/workflows": {"num_steps": 1, "step_seconds": 0},
    "/workflows:batch": {"workflows": [{}]},
}


class Tokens:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.reader, reader_line = auth.new_token("dashboard", "read")
        self.operator, operator_line = auth.new_token("ci-bot", "operate")
        path.write_text(f"# who may call\n{reader_line}\n{operator_line}  # the deploy job\n")


@pytest.fixture
def tokens(tmp_path: Path) -> Tokens:
    return Tokens(tmp_path / "tokens")


@pytest.fixture
def url(new_migrated_database: NewDatabase) -> str:
    return new_migrated_database("postgres")


@pytest.fixture
def api(url: str, tmp_path: Path, tokens: Tokens) -> Iterator[Api]:
    api = Api(
        url,
        tmp_path,
        API_AUTH="tokens",
        API_AUTH_TOKENS_FILE=str(tokens.path),
    )
    api.wait_ready()
    yield api
    api.stop()


def _call(api: Api, method: str, path: str, token: str | None) -> tuple[int, dict[str, str], str]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = BODIES.get(path)
    response = api.http.request(method, path, json=body, headers=headers)
    return response.status_code, dict(response.headers), response.text


@pytest.mark.postgres
def test_every_route_for_no_token_a_bad_one_and_each_role(api: Api, tokens: Tokens) -> None:
    for method, path, protected in ROUTES:
        where = f"{method} {path}"
        status, headers, _ = _call(api, method, path, None)
        if not protected:
            assert status == 200, where
            continue
        assert status == 401, where
        assert headers["www-authenticate"] == 'Bearer realm="dbos-queue-worker"', where
        assert headers["content-type"] == "application/problem+json", where
        status, headers, text = _call(api, method, path, "not-a-token")
        assert status == 401 and 'error="invalid_token"' in headers["www-authenticate"], where
        assert "not-a-token" not in text
        status, headers, text = _call(api, method, path, tokens.reader)
        if method == "GET":
            assert status in (200, 404), where  # 404: the workflow of the path does not exist
        else:
            assert status == 403, where
            assert 'error="insufficient_scope", scope="operate"' in headers["www-authenticate"]
            assert "dashboard has the role read; this needs operate" in text
        status, _, _ = _call(api, method, path, tokens.operator)
        assert status in (200, 202, 404), where
    # Malformed headers: 400 invalid_request (RFC 6750 3.1).
    for header in ("Basic abc", "Bearer", "Token abc"):
        response = api.http.get("/workflows", headers={"Authorization": header})
        assert response.status_code == 400, header
        assert 'error="invalid_request"' in response.headers["www-authenticate"], header


@pytest.mark.postgres
def test_a_workflow_records_who_enqueued_it(api: Api, tokens: Tokens, url: str) -> None:
    headers = {"Authorization": f"Bearer {tokens.operator}"}
    one = api.http.post("/workflows", json={"num_steps": 1}, headers=headers)
    assert one.status_code == 202, one.text
    batch = api.http.post("/workflows:batch", json={"workflows": [{}, {}]}, headers=headers)
    assert batch.status_code == 202, batch.text
    ids = [one.json()["workflow_id"], *(w["workflow_id"] for w in batch.json()["workflows"])]
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT authenticated_user, authenticated_roles FROM dbos.workflow_status "
                "WHERE workflow_uuid = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    engine.dispose()
    assert sorted(map(tuple, rows)) == [("ci-bot", '["read", "operate"]')] * 3


@pytest.mark.postgres
def test_tokens_rotate_without_a_restart_and_never_show_in_the_log(
    api: Api, tokens: Tokens
) -> None:
    old = tokens.operator
    new, line = auth.new_token("ci-bot", "operate")
    # Both while the clients move, then the old one removed.
    tokens.path.write_text(tokens.path.read_text() + line + "\n")
    wait_for(
        lambda: _call(api, "GET", "/workflows", new)[0] == 200, timeout=10, what="the new token"
    )
    assert _call(api, "GET", "/workflows", old)[0] == 200
    kept = [row for row in tokens.path.read_text().splitlines() if "ci-bot" not in row]
    tokens.path.write_text("\n".join([*kept, line]) + "\n")
    wait_for(
        lambda: _call(api, "GET", "/workflows", old)[0] == 401, timeout=10, what="the old token out"
    )
    assert _call(api, "GET", "/workflows", new)[0] == 200
    # A file that no longer reads keeps the last good table (and says so, without tokens).
    # A file without a good line lets nobody in (a revocation never fails open), and says why.
    tokens.path.write_text("garbage\n")
    # (The file is looked at again when a request comes, once a second at most.)
    wait_for(
        lambda: _call(api, "GET", "/workflows", new)[0] == 401,
        timeout=10,
        what="the bad file to take effect",
    )
    assert "auth.token_file_problem" in api.service.log()
    log = api.service.log()
    assert all(token not in log for token in (old, new, tokens.reader))


def test_the_api_refuses_to_start_on_a_bad_token_file(tmp_path: Path) -> None:
    token = "a-token-in-clear-that-must-not-be-echoed"
    (tmp_path / "tokens").write_text(f"ci-bot operate sha256:{'0' * 64}\nci-bot operate {token}\n")
    started = subprocess.run(
        [sys.executable, "-m", "services.api"],
        env={
            "PATH": "/usr/bin:/bin",
            "API_AUTH": "tokens",
            "API_AUTH_TOKENS_FILE": str(tmp_path / "tokens"),
            "DBOS_SYSTEM_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert f"{tmp_path / 'tokens'}, line 2: the token must be given as sha256:" in started.stderr
    assert token not in started.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "services.api"],
        env={"PATH": "/usr/bin:/bin", "API_AUTH": "tokens"},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        missing.returncode == 2 and "API_AUTH=tokens needs API_AUTH_TOKENS_FILE" in missing.stderr
    )


def test_the_openapi_document_says_which_operations_need_a_token() -> None:
    from services.api.openapi import openapi_document

    document = openapi_document()
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for method, path, protected in ROUTES:
        template = path.replace(WID, "{workflow_id}").replace("app.js", "{name}")
        operation = document["paths"][template][method.lower()]
        assert operation["security"] == ([{"bearerAuth": []}] if protected else []), path
        responses = operation["responses"]
        assert ("401" in responses) == protected, path
        assert ("403" in responses) == (protected and method == "POST"), path


def test_new_token_prints_a_token_once_and_the_line_that_admits_it(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "services.api", "new-token", "ci-bot", "operate"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    token, line = made.stdout.splitlines()[-2:]
    (tmp_path / "tokens").write_text(line + "\n")
    table = auth.TokenTable(tmp_path / "tokens")
    assert table.identify(token) == auth.Identity("ci-bot", auth.Role.OPERATE)
    assert token not in line
    bad = subprocess.run(
        [sys.executable, "-m", "services.api", "new-token", "ci-bot", "admin"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "the role must be read or operate" in bad.stderr

"""Schemathesis against the API's own OpenAPI document, with and without tokens: every
generated request is answered without a 5xx, with a status and content type the document
declares, and a refused request enqueues nothing."""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from schemathesis import checks

from services.api import auth
from services.api.openapi import openapi_document
from tests.conftest import NewDatabase
from tests.support.processes import Api

SCHEMA = schemathesis.openapi.from_dict(openapi_document())
MAX_EXAMPLES = 25
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
]


class Target:
    def __init__(self, api: Api, url: str, headers: dict[str, str]) -> None:
        self.api, self.url, self.headers = api, url, headers
        self.engine = sa.create_engine(url)

    def workflows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM workflow_status")).scalar_one())


@pytest.fixture(scope="module", params=["open", "tokens"])
def target(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    new_migrated_database: NewDatabase,
) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp("fuzz")
    url = new_migrated_database("sqlite")
    env: dict[str, str] = {}
    headers: dict[str, str] = {}
    if request.param == "tokens":
        token, line = auth.new_token("fuzzer", "operate")
        (workdir / "tokens").write_text(line + "\n")
        env = {"API_AUTH": "tokens", "API_AUTH_TOKENS_FILE": str(workdir / "tokens")}
        headers = {"Authorization": f"Bearer {token}"}
    api = Api(url, workdir, **env)
    api.wait_ready()
    target = Target(api, url, headers)
    yield target
    target.engine.dispose()
    api.stop()


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests(case: schemathesis.Case[Any], target: Target) -> None:
    before = target.workflows() if case.method == "POST" else 0
    response = case.call(base_url=target.api.url, headers=target.headers, timeout=30)
    case.validate_response(response, checks=CHECKS)
    if case.method == "POST" and response.status_code >= 400:
        assert target.workflows() == before, f"a refused {case.method} {case.path} wrote rows"

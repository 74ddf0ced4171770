"""A user's own workflows without a fork: a package of theirs beside ours, and a registry file
naming it. The worker imports the package; the API reads only the registry."""

import json
from pathlib import Path

import pytest

from tests.conftest import BACKENDS, NewDatabase
from tests.support.processes import REPO_ROOT, Api, start_worker, wait_worker_ready

PACKAGE = """
from services.worker import sdk


@sdk.workflow("greet")
def greet(name: str, times: int = 1) -> list[str]:
    greetings = [shout(name, i) for i in range(times)]
    sdk.publish_progress(times, times)
    return greetings


@sdk.step()
def shout(name: str, index: int) -> str:
    return f"hello {name} #{index}"
"""

REGISTRY = {
    "default_workflow": "greet",
    "queues": {"greetings": {"worker_concurrency": 2, "polling_interval_seconds": 0.1}},
    "workflows": {
        "greet": {
            "queue": "greetings",
            "module": "acme_flows.greet",
            "input_schema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "times": {"type": "integer", "minimum": 1, "maximum": 5},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        }
    },
}


def _user_files(root: Path, module: str = "acme_flows.greet") -> tuple[Path, Path]:
    package = root / "site" / "acme_flows"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "greet.py").write_text(PACKAGE)
    document = json.loads(json.dumps(REGISTRY))
    document["workflows"]["greet"]["module"] = module
    registry = root / "registry.json"
    registry.write_text(json.dumps(document))
    return root / "site", registry


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_users_package_runs_from_its_registry_entry(
    backend: str, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database(backend)
    site, registry = _user_files(tmp_path)
    worker = start_worker(
        url,
        tmp_path,
        WORKFLOW_REGISTRY=str(registry),
        PYTHONPATH=f"{REPO_ROOT}:{site}",
    )
    # The API has the registry only: none of the user's code is importable there.
    api = Api(url, tmp_path, WORKFLOW_REGISTRY=str(registry))
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        types = api.http.get("/workflow-types").json()
        assert [t["name"] for t in types["workflow_types"]] == ["greet"]

        workflow_id = api.enqueue(workflow="greet", input={"name": "Ada", "times": 3})
        final = api.wait_status(workflow_id, "SUCCESS")
        assert (final["steps_completed"], final["num_steps"], final["queue"]) == (3, 3, "greetings")
        steps = api.http.get(f"/workflows/{workflow_id}/steps").json()["steps"]
        assert [s["name"] for s in steps if s["name"].endswith("shout")] != []

        missing = api.http.post("/workflows", json={})
        assert missing.status_code == 422, missing.text
        assert missing.json()["errors"][0]["field"] == "name"
    finally:
        api.stop()
        worker.stop()


def test_a_worker_whose_registry_names_missing_code_stops_saying_so(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("sqlite")
    site, registry = _user_files(tmp_path, module="acme_flows.missing")
    worker = start_worker(
        url, tmp_path, WORKFLOW_REGISTRY=str(registry), PYTHONPATH=f"{REPO_ROOT}:{site}"
    )
    try:
        assert worker.wait(timeout=60) == 2
        assert "cannot import module 'acme_flows.missing'" in worker.log()
    finally:
        worker.stop()

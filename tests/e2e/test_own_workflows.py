"""A user's own workflows without a fork: a package of theirs beside ours, and a registry file
naming it. The worker imports the package; the API reads only the registry."""

import json
from pathlib import Path

import pytest

from services.contract import registry as workflow_registry
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


def test_a_fanout_whose_item_fails_for_good_fails_and_cancels_the_rest(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # The built-in registry, with the fan-out allowed to fail every call (it stops at 0.5).
    document = json.loads(workflow_registry.BUILT_IN.read_text())
    for name in ("fanout", "fanout_item"):
        document["workflows"][name]["input_schema"]["properties"]["failure_rate"]["maximum"] = 1
    registry = tmp_path / "registry.json"
    registry.write_text(json.dumps(document))
    url = new_migrated_database("sqlite")
    worker = start_worker(url, tmp_path, WORKFLOW_REGISTRY=str(registry))
    api = Api(url, tmp_path, WORKFLOW_REGISTRY=str(registry))
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        # Twice what one fan-out may run at once: half of them wait when the first fails.
        items = 2 * (workflow_registry.load({}).queues["fanout-items"].partition_concurrency or 1)
        parent = api.enqueue(
            workflow="fanout", input={"items": items, "item_seconds": 0, "failure_rate": 1}
        )

        api.wait_status(parent, "ERROR", timeout=60)

        children = api.http.get("/workflows", params={"workflow": "fanout_item"}).json()
        statuses = [c["status"] for c in children["workflows"] if c["partition_key"] == parent]
        assert len(statuses) == items
        assert "SUCCESS" not in statuses
        # The items that had not started when the first one failed never ran.
        assert "CANCELLED" in statuses, statuses
        steps = api.http.get(f"/workflows/{parent}/steps").json()["steps"]
        assert any(s["name"] == "DBOS.cancelWorkflow" for s in steps), steps
        # The failed call's error, read from what DBOS stored (a pickle, never unpickled).
        failed = next(c for c in children["workflows"] if c["status"] == "ERROR")
        (call,) = api.http.get(f"/workflows/{failed['workflow_id']}/steps").json()["steps"]
        assert call["status"] == "ERROR"
        assert call["error"]["name"] == "DBOSMaxStepRetriesExceeded", call
        assert call["error"]["message"].startswith(
            "call_service (ServiceUnavailable: the service failed item"
        ), call
    finally:
        api.stop()
        worker.stop()

"""The registry of workflow types and queues: the built-in one, and clear errors for bad ones."""

import json
from pathlib import Path
from typing import Any

import pytest

from services.contract import QUEUE_NAME, WORKFLOW_NAME
from services.contract import registry as workflow_registry
from services.contract.registry import RegistryError
from services.worker import sdk, serving
from services.worker.settings import WorkerSettings


def _document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(workflow_registry.BUILT_IN.read_text())
    document.update(changes)
    return document


def _parse(document: dict[str, Any]) -> workflow_registry.Registry:
    return workflow_registry.parse(json.dumps(document), "test.json")


def test_the_built_in_registry_has_the_demo_as_default_and_every_type_defined() -> None:
    registry = workflow_registry.load({})
    assert registry.default_workflow == WORKFLOW_NAME
    assert registry.workflows[WORKFLOW_NAME].queue == QUEUE_NAME
    assert {"fanout", "fanout_item"} <= set(registry.workflows)
    served = serving.import_workflows(registry, sorted(registry.queues))
    assert served == sorted(registry.workflows)
    assert set(registry.workflows) <= set(sdk.DEFINED)
    items = registry.queue_of("fanout_item")
    assert items.partitioned and items.limiter is not None


def test_workflow_registry_names_another_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.json"
    document = _document()
    document["workflows"] = {"workflow": document["workflows"]["workflow"]}
    path.write_text(json.dumps(document))
    registry = workflow_registry.load({workflow_registry.ENV_REGISTRY: str(path)})
    assert set(registry.workflows) == {"workflow"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["workflows"]["fanout"].update(queue="nope"), "workflows.fanout.queue"),
        (lambda d: d.update(default_workflow="nope"), "default_workflow"),
        (
            lambda d: d["workflows"]["fanout"].update(input_schema={"type": "array"}),
            'must describe an object: "type": "object"',
        ),
        (
            lambda d: d["workflows"]["fanout"].update(input_schema={"type": "nonsense"}),
            "not a valid JSON Schema",
        ),
        (lambda d: d["queues"]["fanout"].update(worker_concurrency=0), "worker_concurrency"),
        (
            lambda d: d["queues"]["fanout"].update(global_concurrency=5),
            "worker_concurrency may not exceed global_concurrency",
        ),
        (
            lambda d: d["workflows"]["fanout"]["input_schema"].update({"$ref": "#/$defs/gone"}),
            "$ref '#/$defs/gone' does not resolve",
        ),
        (
            lambda d: d["workflows"]["fanout"]["input_schema"]["properties"]["items"].update(
                default="many"
            ),
            "the default of items breaks its own schema",
        ),
        (lambda d: d["queues"]["fanout"].update(colour="blue"), "queues.fanout.colour"),
        (lambda d: d["workflows"]["fanout"].update(module="not a module"), "module"),
        (lambda d: d["queues"].update({"bad name!": {"worker_concurrency": 1}}), "bad name!"),
        # Queue names are Kubernetes label values: 63 characters, alphanumeric at both ends.
        (lambda d: d["queues"].update({"q" * 64: {"worker_concurrency": 1}}), "q" * 64),
        (lambda d: d["queues"].update({"jobs-": {"worker_concurrency": 1}}), "jobs-"),
    ],
)
def test_a_wrong_registry_is_refused_naming_the_entry(change: Any, message: str) -> None:
    document = _document()
    change(document)
    with pytest.raises(RegistryError, match=r"test\.json") as error:
        _parse(document)
    assert message in str(error.value)


def test_a_key_given_twice_is_refused_not_silently_dropped() -> None:
    text = '{"default_workflow": "a", "default_workflow": "b", "queues": {}, "workflows": {}}'
    with pytest.raises(RegistryError, match="'default_workflow' appears twice"):
        workflow_registry.parse(text, "twice.json")


def test_unreadable_or_malformed_files_say_so(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(RegistryError, match=r"WORKFLOW_REGISTRY=.*cannot read it"):
        workflow_registry.load({workflow_registry.ENV_REGISTRY: str(missing)})
    with pytest.raises(RegistryError, match="not valid JSON"):
        workflow_registry.parse("{", "broken.json")


def test_a_pool_serves_the_queues_it_names_and_only_known_ones() -> None:
    registry = workflow_registry.load({})
    pool = WorkerSettings.from_env({"WORKER_QUEUES": "fanout, fanout-items"})
    assert serving.served_queues(pool, registry) == ["fanout", "fanout-items"]
    everything = WorkerSettings.from_env({})
    assert serving.served_queues(everything, registry) == sorted(registry.queues)
    typo = WorkerSettings.from_env({"WORKER_QUEUES": "fanout,fan-out"})
    with pytest.raises(ValueError, match="WORKER_QUEUES names fan-out; the registry declares"):
        serving.served_queues(typo, registry)


def test_an_override_above_a_global_concurrency_is_refused() -> None:
    document = _document()
    document["queues"]["fanout"]["global_concurrency"] = 10
    spec = _parse(document).queues["fanout"]
    with pytest.raises(ValueError, match="exceeds a served queue's global_concurrency 10"):
        serving.queue_options(WorkerSettings.from_env({"WORKER_CONCURRENCY": "11"}), spec)


def test_a_pool_overrides_the_registry_sizing_of_its_queues() -> None:
    registry = workflow_registry.load({})
    spec = registry.queues["fanout-items"]
    plain = serving.queue_options(WorkerSettings.from_env({}), spec)
    assert plain["worker_concurrency"] == spec.worker_concurrency
    assert plain["limiter"] == {"limit": 20, "period": 1.0}
    sized = WorkerSettings.from_env(
        {"WORKER_CONCURRENCY": "3", "WORKER_POLLING_INTERVAL_SECONDS": "0.1"}
    )
    options = serving.queue_options(sized, spec)
    assert (options["worker_concurrency"], options["polling_interval_sec"]) == (3, 0.1)


def test_a_missing_module_or_type_stops_the_worker_with_the_reason() -> None:
    document = _document()
    document["workflows"]["fanout"]["module"] = "no_such_package.workflows"
    with pytest.raises(ValueError, match=r"cannot import module 'no_such_package\.workflows'"):
        serving.import_workflows(_parse(document), ["fanout"])
    document = _document()
    document["workflows"]["renamed"] = dict(document["workflows"]["fanout"])
    with pytest.raises(ValueError, match=r"'renamed': module .* defines no workflow of that"):
        serving.import_workflows(_parse(document), ["fanout"])

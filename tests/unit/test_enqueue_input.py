"""Enqueue bodies checked against the registry, without a database."""

import json
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from services import contract
from services.api.enqueue_bodies import BatchItem, EnqueueRequest
from services.api.enqueue_input import (
    Enqueue,
    InvalidEnqueue,
    repeated_in_batch,
    resolve,
    same_request,
)
from services.api.listing import WorkflowRecord
from services.api.openapi import openapi_document
from services.contract import registry as workflow_registry

REGISTRY = workflow_registry.load({})


def _resolve(body: bytes) -> Enqueue:
    return resolve(EnqueueRequest.model_validate_json(body), REGISTRY)


def _fields(body: bytes) -> list[str]:
    with pytest.raises(InvalidEnqueue) as error:
        _resolve(body)
    return [e["field"] for e in error.value.errors]


DEMO_DEFAULTS = {"num_steps": contract.DEFAULT_NUM_STEPS, "step_seconds": 1}


def test_an_empty_request_is_the_default_type_with_its_schemas_defaults() -> None:
    enqueue = resolve(EnqueueRequest(), REGISTRY)
    assert enqueue == Enqueue(
        workflow=contract.WORKFLOW_NAME, queue=contract.QUEUE_NAME, input=DEMO_DEFAULTS
    )
    spelled_out = _resolve(b'{"num_steps": 10, "step_seconds": 1.0}')
    assert spelled_out.digest == enqueue.digest


def test_the_first_release_body_is_the_default_types_input() -> None:
    enqueue = _resolve(b'{"num_steps": 3, "step_seconds": 0, "priority": 4}')
    assert (enqueue.workflow, enqueue.input, enqueue.priority) == (
        contract.WORKFLOW_NAME,
        {"num_steps": 3, "step_seconds": 0},
        4,
    )
    assert _resolve(b'{"num_steps": 3}').input == {"num_steps": 3, "step_seconds": 1}


def test_a_typed_request_takes_its_types_queue_defaults_and_options() -> None:
    enqueue = _resolve(
        b'{"workflow": "fanout", "input": {"items": 3}, "delay_seconds": 5,'
        b' "deduplication_id": "d"}'
    )
    assert enqueue.queue == "fanout"
    assert enqueue.timeout_seconds == REGISTRY.workflows["fanout"].defaults.timeout_seconds
    assert (enqueue.delay_seconds, enqueue.deduplication_id) == (5, "d")
    explicit = _resolve(b'{"workflow": "fanout", "timeout_seconds": 9}')
    assert explicit.timeout_seconds == 9


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (b'{"num_steps": "3"}', ["num_steps"]),
        (b'{"num_steps": 2.5}', ["num_steps"]),
        (b'{"num_steps": false}', ["num_steps"]),
        (b'{"num_steps": 1001, "step_seconds": 60.5}', ["num_steps", "step_seconds"]),
        (b'{"extra": 1}', ["extra"]),
        (b'{"workflow": "fanout", "input": {"item": 1}}', ["input.item"]),
        (b'{"workflow": "nope"}', ["workflow"]),
        (b'{"workflow": "fanout", "input": {"items": 0}}', ["input.items"]),
        (b'{"workflow": "fanout", "num_steps": 3}', ["num_steps"]),
        (b'{"workflow": "fanout_item", "input": {"index": 1}}', ["partition_key"]),
        (b'{"workflow": "fanout_item", "input": {}, "partition_key": "p"}', ["input.index"]),
        (
            b'{"workflow": "fanout_item", "input": {"index": 1}, "partition_key": "p",'
            b' "deduplication_id": "d"}',
            ["deduplication_id"],
        ),
        (b'{"workflow": "fanout", "partition_key": "p"}', ["partition_key"]),
        (b'{"input": {"num_steps": NaN}}', ["input"]),
        (b'{"input": {"num_steps": ' + b"[" * 40 + b"]" * 40 + b"}}", ["input"]),
        (b'{"num_steps": ' + b"[" * 40 + b"]" * 40 + b"}", ["body"]),
    ],
)
def test_what_breaks_the_registry_is_refused_naming_each_field(
    body: bytes, fields: list[str]
) -> None:
    assert _fields(body) == fields


@pytest.mark.parametrize(
    "body",
    [
        b'{"priority": 1.5}',
        b'{"priority": "5"}',
        b'{"priority": 0}',
        b'{"priority": 2147483648.0}',
        b'{"delay_seconds": -1}',
        b'{"timeout_seconds": 0}',
        b'{"timeout_seconds": Infinity}',
        b'{"partition_key": ""}',
        b'{"deduplication_id": "a\\u0000b"}',
        b'{"workflow": "bad name"}',
        b'{"input": []}',
        b"[]",
    ],
)
def test_malformed_options_are_refused_before_the_registry(body: bytes) -> None:
    with pytest.raises(ValidationError):
        EnqueueRequest.model_validate_json(body)


@pytest.mark.parametrize(
    ("body", "num_steps", "priority"),
    [
        (b'{"num_steps": 5.0}', 5, None),
        (b'{"priority": 5229.0}', 10, 5229),
        (b'{"num_steps": 1000.0, "priority": 2147483647.0}', 1000, 2147483647),
        (b'{"num_steps": 1e1}', 10, None),
    ],
)
def test_integral_floats_are_integers(body: bytes, num_steps: int, priority: int | None) -> None:
    enqueue = _resolve(body)
    assert (enqueue.input.get("num_steps"), enqueue.priority) == (num_steps, priority)
    assert type(enqueue.input["num_steps"]) is int
    assert priority is None or type(enqueue.priority) is int


def _stored(inputs: Any, priority: int = 0, workflow: str = "workflow") -> WorkflowRecord:
    return WorkflowRecord(
        workflow_id="w",
        workflow=workflow,
        status="ENQUEUED",
        queue_name="q",
        partition_key=None,
        executor_id=None,
        application_version="1",
        priority=priority,
        created_at_ms=0,
        updated_at_ms=0,
        steps_completed=0,
        num_steps=None,
        inputs=inputs,
    )


def test_a_retry_is_the_same_request_only_with_the_same_type_input_and_options() -> None:
    original = _resolve(b'{"num_steps": 5, "priority": 7, "timeout_seconds": 30}')
    stored = replace(_stored({}), request_digest=original.digest)
    assert same_request(
        stored, _resolve(b'{"num_steps": 5.0, "priority": 7.0, "timeout_seconds": 30}')
    )
    for other in (
        b'{"num_steps": 6, "priority": 7, "timeout_seconds": 30}',
        b'{"num_steps": 5, "priority": 7}',
        b'{"num_steps": 5, "priority": 7, "timeout_seconds": 30, "delay_seconds": 9}',
        b'{"num_steps": 5, "priority": 7, "timeout_seconds": 30, "deduplication_id": "d"}',
        b'{"workflow": "fanout", "priority": 7, "timeout_seconds": 30}',
    ):
        assert not same_request(stored, _resolve(other)), other


def test_a_row_of_the_first_release_compares_by_its_positional_input() -> None:
    legacy = _stored({"positionalArgs": [5, 1.0], "namedArgs": {}}, priority=7)
    assert same_request(legacy, _resolve(b'{"num_steps": 5, "priority": 7}'))
    assert not same_request(legacy, _resolve(b'{"num_steps": 5, "priority": 8}'))
    assert not same_request(legacy, _resolve(b'{"num_steps": 5, "step_seconds": 2, "priority": 7}'))


def test_huge_numbers_and_long_values_get_a_message_that_says_the_rule() -> None:
    with pytest.raises(InvalidEnqueue) as error:
        _resolve(b'{"step_seconds": 1e300}')
    assert "maximum of 60" in error.value.errors[0]["message"]
    with pytest.raises(InvalidEnqueue) as error:
        _resolve(b'{"workflow": "fanout", "input": {"items": "' + b"x" * 5000 + b'"}}')
    assert error.value.errors[0] == {"field": "input.items", "message": 'breaks type "integer"'}


def _registry_with(input_schema: dict[str, Any]) -> workflow_registry.Registry:
    document = json.loads(workflow_registry.BUILT_IN.read_text())
    document["workflows"]["fanout"]["input_schema"] = input_schema
    return workflow_registry.parse(json.dumps(document), "test")


def test_formats_are_checked_and_a_failing_check_is_a_422_not_a_500() -> None:
    registry = _registry_with(
        {
            "type": "object",
            "properties": {"to": {"type": "string", "format": "email"}, "n": {"multipleOf": 0.1}},
        }
    )
    bad_email = EnqueueRequest.model_validate_json(b'{"workflow": "fanout", "input": {"to": "x"}}')
    with pytest.raises(InvalidEnqueue, match=r"input\.to"):
        resolve(bad_email, registry)
    huge = b'{"workflow": "fanout", "input": {"n": 1' + b"0" * 400 + b"}}"
    with pytest.raises(InvalidEnqueue, match="cannot be checked against the type's schema"):
        resolve(EnqueueRequest.model_validate_json(huge), registry)


def test_a_batch_may_not_repeat_a_key_or_a_deduplication_id_on_one_queue() -> None:
    items = [
        BatchItem.model_validate({"idempotency_key": "k", "deduplication_id": "d"}),
        BatchItem.model_validate({"idempotency_key": "k"}),
        BatchItem.model_validate({"deduplication_id": "d"}),
        BatchItem.model_validate({"workflow": "fanout", "deduplication_id": "d"}),
    ]
    enqueues = [resolve(item, REGISTRY) for item in items]
    assert [e["field"] for e in repeated_in_batch(items, enqueues)] == [
        "workflows.1.idempotency_key",
        "workflows.2.deduplication_id",
    ]


def test_openapi_documents_the_options_as_json_schema() -> None:
    body = openapi_document()["components"]["schemas"]["EnqueueRequest"]["properties"]
    assert {"type": "integer", "minimum": 1, "maximum": 2**31 - 1} in body["priority"]["anyOf"]
    assert {"workflow", "input", "delay_seconds", "partition_key"} <= set(body)

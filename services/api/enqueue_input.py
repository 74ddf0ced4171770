"""Enqueue requests (services.api.enqueue_bodies) checked against the registry: the type, its
input against the type's JSON Schema, the options against its queue, before anything reaches
the database; and how a retry is told from another request with the same idempotency key.

The input's properties become the workflow's keyword arguments.
"""

import copy
import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Final

from jsonschema import ValidationError as SchemaViolation

from services import contract
from services.api.enqueue_bodies import BatchItem, EnqueueRequest
from services.api.listing import WorkflowRecord
from services.contract.registry import Registry

# Nesting beyond this is refused rather than walked (a 16 KiB body can nest 8,000 deep).
MAX_INPUT_DEPTH: Final = 32
MAX_MESSAGE_LENGTH: Final = 300
MAX_LISTED_TYPES: Final = 20
# A 422 lists at most this many problems (a batch of 1,000 bad items would list 1,000).
MAX_LISTED_ERRORS: Final = 20


@dataclass(frozen=True)
class Enqueue:
    """A request checked against the registry: what is written."""

    workflow: str
    queue: str
    input: dict[str, Any]
    priority: int | None = None
    delay_seconds: float | None = None
    timeout_seconds: float | None = None
    partition_key: str | None = None
    deduplication_id: str | None = None

    @property
    def digest(self) -> str:
        """What identifies the request, options included, for telling a retry from another
        request with the same idempotency key (stored in DBOS's attributes of the workflow)."""
        # A list of the fields in their order (dataclasses.asdict deep-copies: four times slower).
        fields = [getattr(self, field.name) for field in dataclasses.fields(self)]
        canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


class InvalidEnqueue(ValueError):
    """The request breaks the registry's rules; `errors` name each field (as `unprocessable`)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def resolve(request: EnqueueRequest, registry: Registry, prefix: str = "") -> Enqueue:
    """The request as it will be enqueued, or InvalidEnqueue naming every field that is wrong
    (with `prefix` before each name, for an item of a batch)."""
    errors: list[dict[str, str]] = []

    def error(field: str, message: str) -> None:
        errors.append({"field": prefix + field, "message": message[:MAX_MESSAGE_LENGTH]})

    flat = request.model_extra or {}
    if flat and (request.workflow is not None or request.input is not None):
        for name in sorted(flat):
            error(name, "unknown field (a workflow's input goes in input)")
        raise InvalidEnqueue(errors)
    name = request.workflow or registry.default_workflow
    if name not in registry.workflows:
        known = sorted(registry.workflows)
        listed = ", ".join(known[:MAX_LISTED_TYPES]) + (", ..." if len(known) > 20 else "")
        error("workflow", f"no workflow type {name!r}; the types are {listed}")
        raise InvalidEnqueue(errors)
    workflow_type = registry.workflows[name]
    queue = registry.queues[workflow_type.queue]
    given = request.input if request.input is not None else flat
    # The first release's form (no workflow, no input) names input fields as given.
    where = "" if request.workflow is None and request.input is None else "input"
    try:
        value = with_defaults(normalized(given), workflow_type.input_schema)
    except ValueError as exc:
        error(where or "body", str(exc))
        raise InvalidEnqueue(errors) from None
    try:
        violations = sorted(
            registry.validators[name].iter_errors(value), key=lambda v: list(map(str, v.path))
        )
    except Exception as exc:  # a schema whose check itself fails on this input (overflow...)
        error(where or "body", f"cannot be checked against the type's schema: {exc}")
        raise InvalidEnqueue(errors) from None
    for violation in violations:
        error(_field(where, violation), _message(violation))
    if queue.partitioned and request.partition_key is None:
        error("partition_key", f"required: queue {workflow_type.queue!r} is partitioned")
    if not queue.partitioned and request.partition_key is not None:
        error("partition_key", f"queue {workflow_type.queue!r} is not partitioned")
    if queue.partitioned and request.deduplication_id is not None:
        error("deduplication_id", "partitioned queues do not deduplicate (DBOS)")
    if errors:
        raise InvalidEnqueue(errors)
    defaults = workflow_type.defaults
    return Enqueue(
        workflow=name,
        queue=workflow_type.queue,
        input=value,
        priority=request.priority if request.priority is not None else defaults.priority,
        delay_seconds=request.delay_seconds or None,
        timeout_seconds=(
            request.timeout_seconds
            if request.timeout_seconds is not None
            else defaults.timeout_seconds
        ),
        partition_key=request.partition_key,
        deduplication_id=request.deduplication_id,
    )


def with_defaults(value: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The input with the schema's defaults for the properties it leaves out: stored whole, so
    a retry that spells a default out is the same request as one that left it out."""
    filled = dict(value)
    for name, spec in schema.get("properties", {}).items():
        if name not in filled and isinstance(spec, dict) and "default" in spec:
            filled[name] = copy.deepcopy(spec["default"])
    return filled


def _message(violation: SchemaViolation) -> str:
    """jsonschema's message, or, where it would quote a long value, the rule it breaks."""
    if len(violation.message) <= MAX_MESSAGE_LENGTH:
        return violation.message
    rule = json.dumps(violation.validator_value, default=str)[:100]
    return f"breaks {violation.validator} {rule}"


def repeated_in_batch(items: list[BatchItem], enqueues: list[Enqueue]) -> list[dict[str, str]]:
    """Problems of a batch as a whole: an idempotency key, or a deduplication id on one queue,
    given twice (the second could never be written beside the first)."""
    errors: list[dict[str, str]] = []
    keys: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.idempotency_key is None:
            continue
        if item.idempotency_key in keys:
            errors.append(
                {
                    "field": f"workflows.{index}.idempotency_key",
                    "message": f"repeats workflows.{keys[item.idempotency_key]}'s key",
                }
            )
        else:
            keys[item.idempotency_key] = index
    held: dict[tuple[str, str], int] = {}
    if len(enqueues) == len(items):
        for index, enqueue in enumerate(enqueues):
            if enqueue.deduplication_id is None:
                continue
            pair = (enqueue.queue, enqueue.deduplication_id)
            if pair in held:
                errors.append(
                    {
                        "field": f"workflows.{index}.deduplication_id",
                        "message": f"repeats workflows.{held[pair]}'s on queue {enqueue.queue!r}",
                    }
                )
            else:
                held[pair] = index
    return errors


def _field(where: str, violation: SchemaViolation) -> str:
    path = [str(p) for p in violation.path]
    # The property the rule is about, where the rule sits on the object that holds it.
    instance = violation.instance if isinstance(violation.instance, dict) else {}
    if violation.validator == "required" and isinstance(violation.validator_value, list):
        path += [p for p in violation.validator_value if p not in instance][:1]
    if violation.validator == "additionalProperties" and isinstance(violation.schema, dict):
        declared = violation.schema.get("properties", {})
        path += [str(p) for p in instance if p not in declared][:1]
    return ".".join([where, *path] if where else path) or "input"


def normalized(value: dict[str, Any]) -> dict[str, Any]:
    """The input as stored: integral numbers as integers (JSON does not tell 5.0 from 5, and
    a workflow given 5.0 for an integer would fail), no NaN or infinities, bounded nesting.
    ValueError saying what is wrong."""

    def walk(item: Any, depth: int) -> Any:
        if depth > MAX_INPUT_DEPTH:
            raise ValueError(f"nested deeper than {MAX_INPUT_DEPTH} levels")
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite (no NaN or Infinity)")
            # Exact integers only: beyond 2**53 a float is no longer one integer.
            return int(item) if item.is_integer() and abs(item) <= 2**53 else item
        if isinstance(item, dict):
            return {k: walk(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, depth + 1) for v in item]
        return item

    result: dict[str, Any] = walk(value, 0)
    return result


def same_request(record: WorkflowRecord, enqueue: Enqueue) -> bool:
    """Whether a stored workflow was enqueued from this request (for idempotent retries).

    Rows this API wrote carry the digest of their request, options included. Rows of the
    first release carry none, and stored the demo's input positionally: those compare by type,
    input and priority. Numbers compare by value: {"num_steps": 5.0} matches {"num_steps": 5}.
    """
    if record.request_digest is not None:
        return record.request_digest == enqueue.digest
    inputs = record.inputs if isinstance(record.inputs, dict) else {}
    named = inputs.get("namedArgs") or {}
    positional = inputs.get("positionalArgs") or []
    if positional and record.workflow == contract.WORKFLOW_NAME:
        named = {**dict(zip(_DEMO_PARAMETERS, positional, strict=False)), **named}
    elif positional:
        return False
    return (
        record.workflow == enqueue.workflow
        and named == enqueue.input
        and record.priority == (enqueue.priority or 0)
        and record.partition_key == enqueue.partition_key
    )


# The demo's parameters, in order: how the first release stored its input.
_DEMO_PARAMETERS: Final = ("num_steps", "step_seconds")

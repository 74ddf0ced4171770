"""The registry of workflow types and queues: declared once, in JSON, read by both services.

The API validates each enqueue against its type's input schema (JSON Schema 2020-12) without
importing workflow code; a worker imports the modules of the types on the queues it serves
and registers those queues with DBOS as declared here. The built-in registry (registry.json
beside this module) holds the project's examples; WORKFLOW_REGISTRY names another file, which
replaces it (copy the entries you keep).
"""

import json
import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Final, Self

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from referencing import Registry as ReferenceRegistry
from referencing.jsonschema import DRAFT202012

ENV_REGISTRY: Final = "WORKFLOW_REGISTRY"
BUILT_IN: Final = Path(__file__).with_name("registry.json")

# Names appear in URLs, metric labels and Kubernetes values: kept to a safe alphabet.
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
MODULE_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
MAX_PRIORITY: Final = 2**31 - 1  # DBOS's bound; 1 runs first
MAX_DELAY_SECONDS: Final = 366 * 86400.0
MAX_TIMEOUT_SECONDS: Final = 366 * 86400.0

# A queue's name is a Kubernetes label value too (the autoscalers select their queues by it):
# at most 63 characters, starting and ending with a letter or digit.
QUEUE_NAME_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
QueueName = Annotated[str, Field(pattern=QUEUE_NAME_PATTERN)]


class RegistryError(ValueError):
    """The registry file is missing or wrong; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RateLimit(_Strict):
    """At most `limit` workflows start within any `period_seconds` (DBOS's limiter)."""

    limit: int = Field(ge=1)
    period_seconds: float = Field(gt=0, le=86400, allow_inf_nan=False)

    def dbos(self) -> dict[str, Any]:
        return {"limit": self.limit, "period": self.period_seconds}


class QueueSpec(_Strict):
    """A queue, as DBOS 3.4's `register_queue` takes it. Priority needs no setting: every DBOS
    3.4 queue orders by it."""

    description: str = ""
    # Workflows one worker runs at once from this queue; always bounded (unbounded, one worker
    # would claim the whole queue).
    worker_concurrency: int = Field(ge=1, le=1000)
    # Across all workers.
    global_concurrency: int | None = Field(None, ge=1)
    limiter: RateLimit | None = None
    # Set: the queue is partitioned (every enqueue names a partition key), and no key runs
    # more than this many at once across the fleet, so one key cannot starve the others.
    partition_concurrency: int | None = Field(None, ge=1)
    polling_interval_seconds: float = Field(1.0, ge=0.01, le=60, allow_inf_nan=False)

    @model_validator(mode="after")
    def _within_global_concurrency(self) -> Self:
        # DBOS's register_queue refuses these (after launch, with a traceback): refuse early.
        limit = self.global_concurrency
        if limit is not None and self.worker_concurrency > limit:
            raise ValueError("worker_concurrency may not exceed global_concurrency")
        if limit is not None and (self.partition_concurrency or 0) > limit:
            raise ValueError("partition_concurrency may not exceed global_concurrency")
        return self

    @property
    def partitioned(self) -> bool:
        return self.partition_concurrency is not None

    def dbos_options(self) -> dict[str, Any]:
        """Keyword arguments of DBOS's `register_queue`."""
        return {
            "worker_concurrency": self.worker_concurrency,
            "global_concurrency": self.global_concurrency,
            "limiter": self.limiter.dbos() if self.limiter else None,
            "partition_concurrency": self.partition_concurrency,
            "polling_interval_sec": self.polling_interval_seconds,
        }


class EnqueueDefaults(_Strict):
    """Options a type's workflows get when the request leaves them out."""

    priority: int | None = Field(None, ge=1, le=MAX_PRIORITY)
    timeout_seconds: float | None = Field(None, gt=0, le=MAX_TIMEOUT_SECONDS, allow_inf_nan=False)


class WorkflowType(_Strict):
    """A workflow the fleet runs: DBOS's workflow name is the type's name."""

    description: str = ""
    queue: QueueName
    # The Python module whose import registers the workflow (services.worker.sdk.workflow).
    module: str = Field(pattern=MODULE_PATTERN)
    # JSON Schema of the input object; its properties are the workflow's keyword arguments.
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    defaults: EnqueueDefaults = EnqueueDefaults()

    @field_validator("input_schema")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(p) for p in exc.path) or "(top)"
            raise ValueError(f"not a valid JSON Schema at {where}: {exc.message}") from None
        if schema.get("type") != "object":
            raise ValueError('must describe an object: "type": "object" (its keyword arguments)')
        resolver = ReferenceRegistry().with_resource("", DRAFT202012.create_resource(schema))
        for ref in _refs(schema):
            try:
                resolver.resolver().lookup(ref)
            except Exception:
                raise ValueError(
                    f"$ref {ref!r} does not resolve (only references within the schema do)"
                ) from None
        for name, spec in schema.get("properties", {}).items():
            if isinstance(spec, dict) and "default" in spec:
                errors = list(input_validator(spec).iter_errors(spec["default"]))
                if errors:
                    raise ValueError(
                        f"the default of {name} breaks its own schema: {errors[0].message}"
                    )
        return schema


def input_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of inputs against `schema`, checking the formats jsonschema can check
    without extra packages (email, ipv4, ipv6, date, ...)."""
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _refs(node: Any) -> list[str]:
    """Every $ref in a schema, however deep."""
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


class Registry(_Strict):
    # What a POST /workflows without "workflow" enqueues.
    default_workflow: Name
    queues: dict[QueueName, QueueSpec] = Field(min_length=1)
    workflows: dict[Name, WorkflowType] = Field(min_length=1)

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        for name, workflow in self.workflows.items():
            if workflow.queue not in self.queues:
                raise ValueError(
                    f"workflows.{name}.queue: no queue {workflow.queue!r} is declared "
                    f"(declared: {', '.join(sorted(self.queues))})"
                )
        if self.default_workflow not in self.workflows:
            raise ValueError(f"default_workflow: no workflow {self.default_workflow!r} is declared")
        return self

    def queue_of(self, workflow: str) -> QueueSpec:
        return self.queues[self.workflows[workflow].queue]

    def workflows_on(self, queues: set[str]) -> dict[str, WorkflowType]:
        return {n: w for n, w in self.workflows.items() if w.queue in queues}

    @cached_property
    def validators(self) -> Mapping[str, Draft202012Validator]:
        """One input validator per workflow type (built once)."""
        return {name: input_validator(w.input_schema) for name, w in self.workflows.items()}


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise RegistryError(f"key {repeated[0]!r} appears twice in one object")
    return dict(pairs)


def parse(text: str, source: str) -> Registry:
    """A registry from JSON text; RegistryError naming `source` and what is wrong."""
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RegistryError as exc:
        raise RegistryError(f"{source}: {exc}") from None
    except ValueError as exc:
        raise RegistryError(f"{source}: not valid JSON: {exc}") from None
    try:
        return Registry.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise RegistryError(f"{source}: {problems}") from None


def load(environ: Mapping[str, str] = os.environ) -> Registry:
    """The registry WORKFLOW_REGISTRY names, or the built-in one."""
    path = Path(environ.get(ENV_REGISTRY) or BUILT_IN)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError(f"{ENV_REGISTRY}={path}: cannot read it: {exc.strerror}") from None
    return parse(text, str(path))

"""The bodies POST /workflows and /workflows:batch take (their wire shapes, as the OpenAPI
document describes them): a workflow type, its input, and the enqueue options.

A request without `workflow` and `input` is the registry's default type, its other properties
the input (the first release's body: {"num_steps": 5} enqueues the demo). What the input and
options must be for the type is checked against the registry by services.api.enqueue_input.
"""

from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.contract.registry import (
    MAX_DELAY_SECONDS,
    MAX_PRIORITY,
    MAX_TIMEOUT_SECONDS,
    NAME_PATTERN,
)

MAX_BATCH_SIZE: Final = 1000
MAX_KEY_LENGTH: Final = 255
# Printable, without control characters: these are stored as text and shown in listings.
KEY_PATTERN: Final = r"^[^\x00-\x1f\x7f-\x9f]+$"


def _integral_float_to_int(value: Any) -> Any:
    """5.0 is the integer 5, as JSON Schema's integer says; 2.5, NaN and infinities are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# On a strict int (no strings, no booleans), after its bounds: placed before them, pydantic
# would write the bounds into the JSON schema as "ge"/"le" instead of "minimum"/"maximum".
INTEGRAL_FLOAT_AS_INT: Final = BeforeValidator(_integral_float_to_int)
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH, pattern=KEY_PATTERN)]


class EnqueueRequest(BaseModel):
    """Body of POST /workflows. Every field is optional; an empty body enqueues the default
    type with its defaults."""

    # Extra properties are the default type's input (see the module's docstring).
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    workflow: str | None = Field(
        None, pattern=NAME_PATTERN, description="A type of GET /workflow-types."
    )
    input: dict[str, Any] | None = Field(
        None, description="The type's input: an object its input_schema accepts."
    )
    priority: Annotated[int, Field(ge=1, le=MAX_PRIORITY), INTEGRAL_FLOAT_AS_INT] | None = Field(
        None, description="Lower runs first; unset runs before any set."
    )
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description="Not started before this many seconds from now (DELAYED until then).",
    )
    timeout_seconds: float | None = Field(
        None,
        ge=0.001,  # DBOS keeps whole milliseconds
        le=MAX_TIMEOUT_SECONDS,
        allow_inf_nan=False,
        description="Cancelled if not finished this long after it starts.",
    )
    partition_key: Key | None = Field(
        None, description="Required on a partitioned queue, refused on the others."
    )
    deduplication_id: Key | None = Field(
        None,
        description="At most one workflow with this id is queued or running on the queue "
        "at once: another gets 409. Not on partitioned queues.",
    )


class BatchItem(EnqueueRequest):
    """One workflow of POST /workflows:batch: an enqueue request and its own idempotency key."""

    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern="^[!-~]+$",
        description="As the Idempotency-Key header of POST /workflows, for this item alone.",
    )


class BatchRequest(BaseModel):
    """Body of POST /workflows:batch."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    workflows: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_SIZE)

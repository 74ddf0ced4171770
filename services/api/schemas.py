"""Request and response shapes of the HTTP API, and the validation that guards the database."""

import base64
import binascii
import json
import re
import uuid
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services import contract
from services.api.listing import PageKey, WorkflowRecord

MAX_BODY_BYTES: Final = 16 * 1024
MAX_BATCH_SIZE: Final = 1000
MAX_BATCH_BODY_BYTES: Final = 1024 * 1024
DEFAULT_PAGE_LIMIT: Final = 50
MAX_PAGE_LIMIT: Final = 500
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
MAX_PRIORITY: Final = 2**31 - 1  # DBOS's bound; 1 runs first
MAX_WORKFLOW_ID_LENGTH: Final = 255
# Control characters (PostgreSQL text cannot hold NUL) and lone surrogates (not encodable).
FORBIDDEN_IN_WORKFLOW_ID: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
WORKFLOW_ID_RULE: Final = (
    f"workflow id must be 1 to {MAX_WORKFLOW_ID_LENGTH} characters, "
    "none of them a control character (U+0000 to U+001F, U+007F to U+009F)"
)
# The cursor's time is compared with a BIGINT column (SQLite's integers have the same range).
MIN_BIGINT: Final = -(2**63)
MAX_BIGINT: Final = 2**63 - 1
STATUSES: Final = (
    "ENQUEUED",
    "DELAYED",
    "PENDING",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
)
# Fixed namespace so the same Idempotency-Key always names the same workflow.
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("5b0f4a51-8f0e-4a43-9a57-0d1b3c2e7a10")


class InvalidInput(ValueError):
    """Input that must be rejected before it reaches the database; the message says why."""


def _integral_float_to_int(value: Any) -> Any:
    """5.0 is the integer 5, as JSON Schema's integer says; 2.5, NaN and infinities are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# On a strict int (no strings, no booleans), after its bounds: placed before them, pydantic
# would write the bounds into the JSON schema as "ge"/"le" instead of "minimum"/"maximum".
INTEGRAL_FLOAT_AS_INT: Final = BeforeValidator(_integral_float_to_int)


class EnqueueRequest(BaseModel):
    """Body of POST /workflows. Every field is optional; an empty body takes the defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    num_steps: Annotated[int, Field(ge=1, le=contract.MAX_NUM_STEPS), INTEGRAL_FLOAT_AS_INT] = (
        contract.DEFAULT_NUM_STEPS
    )
    step_seconds: float = Field(
        contract.DEFAULT_STEP_SECONDS, ge=0, le=contract.MAX_STEP_SECONDS, allow_inf_nan=False
    )
    priority: Annotated[int, Field(ge=1, le=MAX_PRIORITY), INTEGRAL_FLOAT_AS_INT] | None = Field(
        None, description="Lower runs first; unset runs before any set."
    )

    def workflow_args(self) -> list[Any]:
        """Positional arguments of the worker's workflow, as stored (portable JSON)."""
        return [self.num_steps, self.step_seconds]


class BatchItem(EnqueueRequest):
    """One workflow of POST /workflows:batch: an enqueue request and its own idempotency key."""

    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        pattern="^[!-~]+$",
        description="As the Idempotency-Key header of POST /workflows, for this item alone.",
    )


class BatchRequest(BaseModel):
    """Body of POST /workflows:batch."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    workflows: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_SIZE)

    def repeated_key(self) -> tuple[int, int] | None:
        """The first item whose idempotency key an earlier item has, with that earlier item."""
        seen: dict[str, int] = {}
        for index, item in enumerate(self.workflows):
            if item.idempotency_key is None:
                continue
            if item.idempotency_key in seen:
                return seen[item.idempotency_key], index
            seen[item.idempotency_key] = index
        return None


def idempotency_workflow_id(key: str) -> str:
    """The workflow id an Idempotency-Key stands for; InvalidInput if the key is malformed."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long"
        )
    if not all(33 <= ord(ch) <= 126 for ch in key):
        raise InvalidInput("Idempotency-Key must be printable ASCII without spaces")
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, key))


def same_request(record: WorkflowRecord, request: EnqueueRequest) -> bool:
    """Whether a stored workflow was enqueued from this request (for idempotent retries).

    Numbers compare by value: a retry with {"num_steps": 5.0} matches {"num_steps": 5}.
    """
    args = record.inputs.get("positionalArgs") if isinstance(record.inputs, dict) else None
    return args == request.workflow_args() and record.priority == (request.priority or 0)


def is_workflow_id(value: str) -> bool:
    """Whether `value` keeps the rule for workflow ids (any text the databases can store)."""
    return (
        1 <= len(value) <= MAX_WORKFLOW_ID_LENGTH and FORBIDDEN_IN_WORKFLOW_ID.search(value) is None
    )


def parse_workflow_id(raw: str) -> str:
    """A workflow id from a path; InvalidInput naming the rule if it breaks it."""
    if not is_workflow_id(raw):
        raise InvalidInput(WORKFLOW_ID_RULE)
    return raw


def single_value(name: str, values: list[str]) -> str | None:
    """The one value of a query parameter; InvalidInput if it is given more than once."""
    if len(values) > 1:
        raise InvalidInput(f"{name} must be given at most once")
    return values[0] if values else None


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_LIMIT
    # ASCII digits only: str.isdigit() also takes U+00B2 "superscript two" (int() fails on
    # it) and U+FF15 "fullwidth digit five" (int() takes it).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not (
        1 <= int(raw) <= MAX_PAGE_LIMIT
    ):
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}")
    return int(raw)


def parse_status(raw: str | None) -> str | None:
    if raw is None:
        return None
    # ASCII only: with U+017F "long s" for the S, "success".upper() is still "SUCCESS".
    if not raw.isascii() or raw.upper() not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}")
    return raw.upper()


def encode_cursor(key: PageKey) -> str:
    raw = json.dumps([key.created_at_ms, key.workflow_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> PageKey | None:
    if cursor is None:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at_ms, workflow_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError, binascii.Error, RecursionError):
        created_at_ms = workflow_id = None
    if (
        type(created_at_ms) is int  # not a bool
        and MIN_BIGINT <= created_at_ms <= MAX_BIGINT
        and isinstance(workflow_id, str)
        and is_workflow_id(workflow_id)
    ):
        return PageKey(created_at_ms, workflow_id)
    raise InvalidInput("cursor is not valid: pass the next_cursor of a previous page unchanged")

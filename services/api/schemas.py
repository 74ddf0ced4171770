"""Request and response shapes of the HTTP API, and the validation that guards the database."""

import base64
import binascii
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from services import contract
from services.api.fleet import FleetSnapshot
from services.api.store import PageKey, WorkflowRecord

MAX_BODY_BYTES: Final = 16 * 1024
DEFAULT_PAGE_LIMIT: Final = 50
MAX_PAGE_LIMIT: Final = 500
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
MAX_PRIORITY: Final = 2**31 - 1  # DBOS's bound; 1 runs first
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


class EnqueueRequest(BaseModel):
    """Body of POST /workflows. Every field is optional; an empty body takes the defaults."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    num_steps: int = Field(contract.DEFAULT_NUM_STEPS, ge=1, le=contract.MAX_NUM_STEPS)
    step_seconds: float = Field(
        contract.DEFAULT_STEP_SECONDS, ge=0, le=contract.MAX_STEP_SECONDS, allow_inf_nan=False
    )
    priority: int | None = Field(
        None, ge=1, le=MAX_PRIORITY, description="Lower runs first; unset runs before any set."
    )

    def workflow_args(self) -> list[Any]:
        """Positional arguments of the worker's workflow, as stored (portable JSON)."""
        return [self.num_steps, self.step_seconds]


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
    """Whether a stored workflow was enqueued from this request (for idempotent retries)."""
    args = record.inputs.get("positionalArgs") if isinstance(record.inputs, dict) else None
    return args == request.workflow_args() and record.priority == (request.priority or 0)


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_PAGE_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE_LIMIT}")
    return int(raw)


def parse_status(raw: str | None) -> str | None:
    if raw is None:
        return None
    if raw.upper() not in STATUSES:
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
        if isinstance(created_at_ms, int) and isinstance(workflow_id, str):
            return PageKey(created_at_ms, workflow_id)
    except (ValueError, TypeError, binascii.Error):
        pass
    raise InvalidInput("cursor is not valid: pass the next_cursor of a previous page unchanged")


def workflow_json(record: WorkflowRecord) -> dict[str, Any]:
    return {
        "workflow_id": record.workflow_id,
        "status": record.status,
        "queue": record.queue_name,
        "priority": record.priority,
        "created_at": _iso(record.created_at_ms),
        "updated_at": _iso(record.updated_at_ms),
        "steps_completed": record.steps_completed,
        "num_steps": record.num_steps,
        "executor_id": record.executor_id,
        "application_version": record.application_version,
    }


def fleet_json(snapshot: FleetSnapshot, grace_seconds: float) -> dict[str, Any]:
    return {
        "grace_seconds": grace_seconds,
        "executors": [
            {
                "executor_id": e.executor_id,
                "application_version": e.application_version,
                "hostname": e.hostname,
                "alive": e.alive,
                "started_at": _iso(e.started_at_ms),
                "last_heartbeat_at": _iso(e.heartbeat_at_ms),
                "stopped_at": None if e.stopped_at_ms is None else _iso(e.stopped_at_ms),
            }
            for e in snapshot.executors
        ],
        "orphaned_workflows": [{"queue": q, "workflows": n} for q, n in snapshot.orphaned],
        "stranded_workflows": [
            {"queue": q, "application_version": v, "workflows": n}
            for q, v, n in snapshot.stranded or []
        ],
    }


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")

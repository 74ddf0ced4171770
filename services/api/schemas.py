"""Validation of what requests carry besides enqueue bodies (services.api.enqueue_input):
idempotency keys, workflow ids, query parameters and cursors."""

import base64
import binascii
import json
import re
import uuid
from typing import Final

from services.api.listing import PageKey
from services.contract import dbos_tables
from services.contract.registry import NAME_PATTERN, Registry

MAX_BODY_BYTES: Final = 16 * 1024
MAX_BATCH_BODY_BYTES: Final = 1024 * 1024
DEFAULT_PAGE_LIMIT: Final = 50
MAX_PAGE_LIMIT: Final = 500
MAX_IDEMPOTENCY_KEY_LENGTH: Final = 255
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
STATUSES: Final = dbos_tables.STATUSES
# Fixed namespace so the same Idempotency-Key always names the same workflow.
IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("5b0f4a51-8f0e-4a43-9a57-0d1b3c2e7a10")


class InvalidInput(ValueError):
    """Input that must be rejected before it reaches the database; the message says why."""


def idempotency_workflow_id(key: str) -> str:
    """The workflow id an Idempotency-Key stands for; InvalidInput if the key is malformed."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidInput(
            f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LENGTH} characters long"
        )
    if not all(33 <= ord(ch) <= 126 for ch in key):
        raise InvalidInput("Idempotency-Key must be printable ASCII without spaces")
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, key))


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


def parse_types(
    registry: Registry, workflow: str | None, queue: str | None
) -> tuple[str, ...] | None:
    """The workflow types a listing filtered by type and queue shows (None: every type).

    A queue stands for the types the registry puts on it: DBOS clears the queue of cancelled
    and timed-out workflows, which must still be listed under it. A type need not be in the
    registry (its workflows may predate the registry's current version)."""
    for name, raw in (("workflow", workflow), ("queue", queue)):
        if raw is not None and not re.fullmatch(NAME_PATTERN, raw):
            raise InvalidInput(
                f"{name} must be a name of 1 to 100 letters, digits, '.', '_' or '-' "
                "(see GET /workflow-types)"
            )
    if queue is None:
        return None if workflow is None else (workflow,)
    if queue not in registry.queues:
        raise InvalidInput(
            f"queue {queue!r} is not in the registry; the queues are "
            f"{', '.join(sorted(registry.queues))}"
        )
    on_queue = tuple(sorted(registry.workflows_on({queue})))
    return on_queue if workflow is None else tuple(t for t in on_queue if t == workflow)


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

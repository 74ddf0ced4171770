"""All of the API's own SQL: reads on the documented DBOS system tables, one round trip each."""

import json
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa

from services import contract

PORTABLE_JSON = "portable_json"

T = TypeVar("T")

_metadata = sa.MetaData()
# The columns this project reads. The tables live in schema "dbos" on Postgres and in the
# main schema on SQLite; `schema_translate_map` picks one per engine.
workflow_status = sa.Table(
    "workflow_status",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("status", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("queue_name", sa.Text),
    sa.Column("executor_id", sa.Text),
    sa.Column("application_version", sa.Text),
    sa.Column("priority", sa.Integer),
    sa.Column("inputs", sa.Text),
    sa.Column("serialization", sa.Text),
    sa.Column("created_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger),
)
workflow_input = sa.Table(
    "workflow_input",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("inputs", sa.Text),
)
workflow_events = sa.Table(
    "workflow_events",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("serialization", sa.Text),
)


@dataclass(frozen=True)
class WorkflowRecord:
    workflow_id: str
    status: str
    queue_name: str | None
    executor_id: str | None
    application_version: str | None
    priority: int
    created_at_ms: int
    updated_at_ms: int
    steps_completed: int
    num_steps: int | None
    # Portable-JSON inputs, for comparing an idempotent retry with the original request.
    inputs: Any


@dataclass(frozen=True)
class PageKey:
    """Keyset position: the last row of the previous page (newest first)."""

    created_at_ms: int
    workflow_id: str


class Store:
    def __init__(self, engine: sa.Engine, schema: str | None) -> None:
        self._engine = engine.execution_options(schema_translate_map={None: schema})

    def ping(self) -> None:
        """Raise unless the database answers and the DBOS schema exists."""
        with self._engine.connect() as conn:
            conn.execute(sa.select(workflow_status.c.workflow_uuid).limit(1)).all()

    def list_page(
        self, limit: int, after: PageKey | None, status: str | None
    ) -> list[WorkflowRecord]:
        """Newest first; `limit` rows after `after`, with progress, in one query."""
        query = _records_query().where(workflow_status.c.name == contract.WORKFLOW_NAME)
        if status is not None:
            query = query.where(workflow_status.c.status == status)
        if after is not None:
            query = query.where(
                sa.tuple_(workflow_status.c.created_at, workflow_status.c.workflow_uuid)
                < sa.tuple_(sa.literal(after.created_at_ms), sa.literal(after.workflow_id))
            )
        query = query.order_by(
            workflow_status.c.created_at.desc(), workflow_status.c.workflow_uuid.desc()
        ).limit(limit)
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def queue_depth(self) -> list[tuple[str, str, int]]:
        """(queue, status, count) for the statuses that make up the queue's load."""
        with self._engine.connect() as conn:
            return [
                (r.queue_name, r.status, r.workflows) for r in conn.execute(queue_depth_query())
            ]

    def get(self, workflow_id: str) -> WorkflowRecord | None:
        query = _records_query().where(workflow_status.c.workflow_uuid == workflow_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)


def _records_query() -> sa.Select[Any]:
    ws = workflow_status
    return sa.select(
        ws.c.workflow_uuid,
        ws.c.status,
        ws.c.queue_name,
        ws.c.executor_id,
        ws.c.application_version,
        ws.c.priority,
        ws.c.created_at,
        ws.c.updated_at,
        ws.c.serialization,
        sa.func.coalesce(workflow_input.c.inputs, ws.c.inputs).label("inputs"),
        workflow_events.c.value.label("progress"),
        workflow_events.c.serialization.label("progress_serialization"),
    ).select_from(
        ws.outerjoin(
            workflow_input, workflow_input.c.workflow_uuid == ws.c.workflow_uuid
        ).outerjoin(
            workflow_events,
            sa.and_(
                workflow_events.c.workflow_uuid == ws.c.workflow_uuid,
                workflow_events.c.key == contract.PROGRESS_EVENT_KEY,
            ),
        )
    )


def _record(row: sa.Row[Any]) -> WorkflowRecord:
    inputs = _portable(row.inputs, row.serialization)
    progress = _portable(row.progress, row.progress_serialization)
    steps_completed, num_steps = 0, _num_steps_from_inputs(inputs)
    if isinstance(progress, dict):
        steps_completed = _int_or(progress.get("steps_completed"), 0)
        num_steps = _int_or(progress.get("num_steps"), num_steps)
    return WorkflowRecord(
        workflow_id=row.workflow_uuid,
        status=row.status,
        queue_name=row.queue_name,
        executor_id=row.executor_id,
        application_version=row.application_version,
        priority=row.priority,
        created_at_ms=row.created_at,
        updated_at_ms=row.updated_at,
        steps_completed=steps_completed,
        num_steps=num_steps,
        inputs=inputs,
    )


def _portable(value: str | None, serialization: str | None) -> Any:
    # Only JSON is decoded here; the API never unpickles data read from the database.
    if value is None or serialization != PORTABLE_JSON:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _num_steps_from_inputs(inputs: Any) -> int | None:
    if not isinstance(inputs, dict):
        return None
    positional = inputs.get("positionalArgs") or []
    named = inputs.get("namedArgs") or {}
    if positional:
        return _int_or(positional[0], None)
    return _int_or(named.get("num_steps", contract.DEFAULT_NUM_STEPS), None)


def _int_or(value: Any, default: T) -> int | T:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


QUEUED_STATUSES = ("ENQUEUED", "PENDING", "DELAYED")


def queue_depth_query() -> sa.Select[Any]:
    # Served by DBOS's partial index on in-flight rows: cost follows the queue, not the history.
    ws = workflow_status
    return (
        sa.select(ws.c.queue_name, ws.c.status, sa.func.count().label("workflows"))
        .where(ws.c.status.in_(QUEUED_STATUSES), ws.c.queue_name.is_not(None))
        .group_by(ws.c.queue_name, ws.c.status)
    )

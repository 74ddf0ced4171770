"""A workflow's steps, read from DBOS's `operation_outputs`: what ran, when, and how it ended.

DBOS 3.4 records an operation when it has completed, so the step in progress is not listed yet;
a `DBOS.sleep` is recorded as it begins, with its wake time as completion, and is RUNNING until
then by the database's clock. Rows written before DBOS recorded times have none.

Errors are shown only when stored as portable JSON (DBOS's `{"name", "message", ...}`); the API
never unpickles what it reads from the database, so another serialization is named, not opened
(DBOS pickles step errors unless the worker's serializer is portable).
"""

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import sqlalchemy as sa

from services.contract import fleet
from services.contract.dbos_tables import operation_outputs, workflow_status

PORTABLE_JSON: Final = "portable_json"


@dataclass(frozen=True)
class StepError:
    name: str | None
    message: str


@dataclass(frozen=True)
class StepRecord:
    step_id: int
    name: str
    status: str  # "ERROR", "RUNNING" (completes later, by the database's clock) or "SUCCESS"
    started_at_ms: int | None
    completed_at_ms: int | None
    error: StepError | None
    child_workflow_id: str | None


def read_steps(conn: sa.Connection, workflow_id: str) -> list[StepRecord] | None:
    """The workflow's steps in order, or None when no workflow has this id."""
    rows = conn.execute(_steps_statement(conn.dialect.name), {"workflow_id": workflow_id}).all()
    if not rows:
        return None
    # An outer join from the workflow: one row with no step when it has none yet.
    return [_step(row) for row in rows if row.function_id is not None]


@cache
def _steps_statement(dialect: str) -> sa.Select[Any]:
    ws, ops = workflow_status, operation_outputs
    return (
        sa.select(
            ops.c.function_id,
            ops.c.function_name,
            ops.c.error,
            ops.c.child_workflow_id,
            ops.c.started_at_epoch_ms,
            ops.c.completed_at_epoch_ms,
            ops.c.serialization,
            (ops.c.completed_at_epoch_ms > fleet.clock_ms(dialect)).label("completes_later"),
        )
        .select_from(ws.outerjoin(ops, ops.c.workflow_uuid == ws.c.workflow_uuid))
        .where(ws.c.workflow_uuid == sa.bindparam("workflow_id", type_=sa.Text))
        .order_by(ops.c.function_id)
    )


def _step(row: sa.Row[Any]) -> StepRecord:
    error = None if row.error is None else decode_error(row.error, row.serialization)
    if error is not None:
        status = "ERROR"
    elif row.completes_later:
        status = "RUNNING"
    else:
        status = "SUCCESS"
    return StepRecord(
        step_id=row.function_id,
        name=row.function_name,
        status=status,
        started_at_ms=row.started_at_epoch_ms,
        completed_at_ms=row.completed_at_epoch_ms,
        error=error,
        child_workflow_id=row.child_workflow_id,
    )


def decode_error(stored: str, serialization: str | None) -> StepError:
    """A stored step error as name and message; never unpickled."""
    if serialization == PORTABLE_JSON:
        try:
            data = json.loads(stored)
        except (ValueError, RecursionError):
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str):
            name = data.get("name")
            return StepError(name if isinstance(name, str) else None, data["message"])
    return StepError(None, f"not shown: stored as {serialization or 'an unknown format'}")

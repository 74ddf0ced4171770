"""The listing's reads: a page of workflows with their progress, or workflows by id, each
in one statement built once per shape, and the rows turned into records."""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, TypeVar

import sqlalchemy as sa

from services import contract
from services.contract.dbos_tables import (
    string_attribute,
    workflow_events,
    workflow_input,
    workflow_status,
)

PORTABLE_JSON = "portable_json"

T = TypeVar("T")


@dataclass(frozen=True)
class WorkflowRecord:
    workflow_id: str
    # The workflow type (DBOS's workflow name).
    workflow: str | None
    status: str
    queue_name: str | None
    partition_key: str | None
    executor_id: str | None
    application_version: str | None
    priority: int
    created_at_ms: int
    updated_at_ms: int
    steps_completed: int
    num_steps: int | None
    # Portable-JSON inputs, for comparing an idempotent retry with the original request.
    inputs: Any
    # The digest of the request that enqueued it (services.api.enqueue_input), if recorded.
    request_digest: str | None = None


@dataclass(frozen=True)
class PageKey:
    """Keyset position: the last row of the previous page (newest first)."""

    created_at_ms: int
    workflow_id: str


def records(conn: sa.Connection, workflow_ids: Sequence[str]) -> dict[str, WorkflowRecord]:
    """The workflows of these ids that exist, by id, read in the caller's transaction."""
    rows = conn.execute(_RECORDS_BY_ID, {"ids": list(workflow_ids)})
    return {row.workflow_uuid: record(row) for row in rows}


# The filters whose pages an index gives newest first: all rows and SUCCESS (DBOS's created_at
# index, which nearly every row matches), PENDING and the failed statuses (partial indexes on
# created_at). ENQUEUED and DELAYED have none: read through created_at, a page of a status
# with few rows would scan the whole history, so the planner keeps its choice there.
SORT_FREE_STATUSES = frozenset(
    {None, "SUCCESS", "PENDING", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}
)
# Of those, the ones the planner must be kept from sorting (plan_pages_without_sorting): with a
# status filter and no statistics it misjudges how many rows match. All rows, unfiltered, it
# reads from the created_at index by its own choice.
PLANNED_WITHOUT_SORTS = SORT_FREE_STATUSES - {None}


def plan_pages_without_sorting(conn: sa.Connection) -> None:
    """For the rest of the transaction, PostgreSQL's planner avoids sorting (SET LOCAL).

    A page is newest first: DBOS's created_at index read backwards, or a partial index of the
    status asked for, gives its rows in order. Before the first ANALYZE (a fresh deployment hit
    by a burst) the planner misjudged a status filter and chose to read and sort every row
    instead: 44 ms at 100,000 workflows, against 0.4 ms by the index. Barring explicit sorts
    leaves it the index, whatever the statistics say.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL enable_sort = off"))


@dataclass(frozen=True)
class PageFilter:
    """What a page lists: workflows of this status and of these types (None: any)."""

    status: str | None = None
    workflows: tuple[str, ...] | None = None


def page_query(limit: int, after: PageKey | None, only: PageFilter) -> sa.Select[Any]:
    """One page of the listing, newest first, `limit` rows after `after` (values bound)."""
    statement, values = page_statement(limit, after, only)
    return statement.params(values)


def page_statement(
    limit: int, after: PageKey | None, only: PageFilter
) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The statement of one page (built once per shape) and the values for it."""
    values: dict[str, Any] = {"limit": limit}
    if after is not None:
        values |= {"after_created_at": after.created_at_ms, "after_id": after.workflow_id}
    if only.status is not None:
        values["status"] = only.status
    if only.workflows is not None:
        values["names"] = list(only.workflows)
    shape = (after is not None, only.status is not None, only.workflows is not None)
    return _page_statement(*shape), values


@cache
def _page_statement(paged: bool, by_status: bool, by_name: bool) -> sa.Select[Any]:
    """The listing's statement of one shape, built once (building one took a millisecond).

    The page's rows are chosen first, in a subquery of their own, and only those rows are joined
    to their inputs and events: PostgreSQL never moves a join into a subquery with a LIMIT, so
    the plan cannot read the whole history, whatever the table statistics say (before the first
    ANALYZE, a single flat query joined every row to its inputs and then sorted them).
    """
    ws = workflow_status
    page = sa.select(*_status_columns(ws))
    if by_status:
        page = page.where(ws.c.status == sa.bindparam("status", type_=sa.Text))
    if by_name:
        page = page.where(ws.c.name.in_(sa.bindparam("names", expanding=True, type_=sa.Text)))
    if paged:
        page = page.where(
            sa.tuple_(ws.c.created_at, ws.c.workflow_uuid)
            < sa.tuple_(
                sa.bindparam("after_created_at", type_=sa.BigInteger),
                sa.bindparam("after_id", type_=sa.Text),
            )
        )
    rows = (
        page.order_by(ws.c.created_at.desc(), ws.c.workflow_uuid.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer))
        .subquery("page")
    )
    return _records_query(rows).order_by(rows.c.created_at.desc(), rows.c.workflow_uuid.desc())


def _status_columns(ws: sa.FromClause) -> list[sa.ColumnElement[Any]]:
    names = (
        "workflow_uuid",
        "name",
        "status",
        "queue_name",
        "queue_partition_key",
        "executor_id",
        "application_version",
        "priority",
        "created_at",
        "updated_at",
        "serialization",
        "inputs",
        "attributes",
    )
    return [ws.c[name] for name in names]


def _records_query(source: sa.FromClause = workflow_status) -> sa.Select[Any]:
    """Rows of `source` (workflow_status or a selection of it) with their inputs and progress."""
    columns = [c for c in _status_columns(source) if c.key != "inputs"]
    return sa.select(
        *columns,
        sa.func.coalesce(workflow_input.c.inputs, source.c.inputs).label("inputs"),
        workflow_events.c.value.label("progress"),
        workflow_events.c.serialization.label("progress_serialization"),
    ).select_from(
        source.outerjoin(
            workflow_input, workflow_input.c.workflow_uuid == source.c.workflow_uuid
        ).outerjoin(
            workflow_events,
            sa.and_(
                workflow_events.c.workflow_uuid == source.c.workflow_uuid,
                workflow_events.c.key == contract.PROGRESS_EVENT_KEY,
            ),
        )
    )


_RECORDS_BY_ID: Final = _records_query().where(
    workflow_status.c.workflow_uuid.in_(sa.bindparam("ids", expanding=True))
)


def record(row: sa.Row[Any]) -> WorkflowRecord:
    inputs = _portable(row.inputs, row.serialization)
    progress = _portable(row.progress, row.progress_serialization)
    # Before its first progress event the demo's length is in its input; other types say
    # nothing of theirs until they publish progress.
    steps_completed = 0
    num_steps = _num_steps_from_inputs(inputs) if row.name == contract.WORKFLOW_NAME else None
    if isinstance(progress, dict):
        steps_completed = _int_or(progress.get("steps_completed"), 0)
        num_steps = _int_or(progress.get("num_steps"), num_steps)
    return WorkflowRecord(
        workflow_id=row.workflow_uuid,
        workflow=row.name,
        status=row.status,
        queue_name=row.queue_name,
        partition_key=row.queue_partition_key,
        executor_id=row.executor_id,
        application_version=row.application_version,
        priority=row.priority,
        created_at_ms=row.created_at,
        updated_at_ms=row.updated_at,
        steps_completed=steps_completed,
        num_steps=num_steps,
        inputs=inputs,
        request_digest=string_attribute(row.attributes, REQUEST_DIGEST_ATTRIBUTE),
    )


# The key of the request's digest in DBOS's attributes of a workflow the API enqueued.
REQUEST_DIGEST_ATTRIBUTE: Final = "queue_worker_request"


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

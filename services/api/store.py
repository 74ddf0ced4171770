"""The API's reads of workflows on the documented DBOS system tables, one round trip each."""

import json
from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import Any, Final, TypeVar

import sqlalchemy as sa

from services import contract
from services.api.steps import StepRecord, read_steps
from services.api.tables import (
    now_ms,
    with_schemas,
    workflow_events,
    workflow_input,
    workflow_status,
)
from services.contract import fleet as rules
from services.contract.fleet import executions, heartbeats

PORTABLE_JSON = "portable_json"

T = TypeVar("T")


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
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = with_schemas(engine)

    def ping(self) -> None:
        """Raise unless the database answers and both schemas (DBOS's, the fleet's) exist."""
        with self._engine.connect() as conn:
            conn.execute(sa.select(workflow_status.c.workflow_uuid).limit(1)).all()
            conn.execute(sa.select(heartbeats.c.executor_id).limit(1)).all()
            conn.execute(sa.select(executions.c.workflow_id).limit(1)).all()

    def list_page(
        self, limit: int, after: PageKey | None, status: str | None
    ) -> list[WorkflowRecord]:
        """Newest first; `limit` rows after `after`, with progress, in one query."""
        query, values = page_statement(limit, after, status)
        if status not in PLANNED_WITHOUT_SORTS:
            with self._single_reads() as conn:
                return [_record(row) for row in conn.execute(query, values)]
        with self._engine.connect() as conn:
            plan_pages_without_sorting(conn)
            return [_record(row) for row in conn.execute(query, values)]

    def _single_reads(self) -> sa.Connection:
        """A connection for reads of one statement each: on PostgreSQL no transaction around
        them (no BEGIN and ROLLBACK round trips, a third of a page's time on the wire). SQLite
        keeps its connections as they are: handed back from autocommit, they would lose the
        IMMEDIATE transactions its writers rely on."""
        conn = self._engine.connect()
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def requeue(
        self, workflow_id: str, queue_name: str, statuses: Collection[str], grace_ms: int
    ) -> bool:
        """Resume: put the workflow back on its queue, only if its status is one of `statuses`
        and no execution of it may still be running.

        The same row change as DBOSClient.resume_workflow (fresh recovery budget, no owner,
        deadline or dedup id), made conditional in one statement: checking first and resuming
        after would let two concurrent resumes re-enqueue a workflow already running again.
        """
        ws = workflow_status
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    sa.update(ws)
                    .where(
                        ws.c.workflow_uuid == workflow_id,
                        ws.c.status.in_(statuses),
                        ~self._may_still_run(grace_ms),
                    )
                    .values(
                        status="ENQUEUED",
                        queue_name=queue_name,
                        owner_xid=None,
                        recovery_attempts=0,
                        workflow_deadline_epoch_ms=None,
                        deduplication_id=None,
                        started_at_epoch_ms=None,
                        completed_at=None,
                        updated_at=now_ms(self._engine),
                    )
                ).rowcount
            )

    def stamp_cancelled(self, workflow_id: str) -> None:
        """Set a cancelled workflow's updated_at to the database's clock now, after the cancel
        committed. DBOS writes its transaction's start, which may be well before the commit
        (a stall in between): the resume's guard needs a time after which any execution that
        starts sees the cancel."""
        ws = workflow_status
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(ws)
                .where(ws.c.workflow_uuid == workflow_id, ws.c.status == "CANCELLED")
                .values(updated_at=now_ms(self._engine))
            )

    def _may_still_run(self, grace_ms: int) -> sa.ColumnElement[bool]:
        """Whether an execution of the workflow may still be inside a step, somewhere.

        A cancelled execution runs on until its current step ends. It is known to be gone once
        its worker has heartbeated since the cancel (with the clock slack to spare) without
        listing it, or once that worker is dead by the fleet's one rule (silent while another
        executor was not: services.contract.fleet). Workers of the previous release list
        nothing (their rows have no healthy_since): only their death counts for them.
        """
        ws, ex = workflow_status, executions
        holder, owner = heartbeats.alias("holder"), heartbeats.alias("owner")

        def not_dead(executor: sa.FromClause) -> sa.ColumnElement[bool]:
            witness = heartbeats.alias()
            return sa.and_(
                executor.c.stopped_at.is_(None),
                ~sa.select(sa.literal(1))
                .where(
                    witness.c.executor_id != executor.c.executor_id,
                    rules.silent_while_witnessed(
                        executor.c.heartbeat_at, witness, rules.grace_of(executor, grace_ms)
                    ),
                )
                .correlate_except(witness)
                .exists(),
            )

        listed = (
            sa.select(sa.literal(1))
            .where(
                ex.c.workflow_id == ws.c.workflow_uuid,
                holder.c.executor_id == ex.c.executor_id,
                not_dead(holder),
            )
            .correlate_except(ex, holder)
            .exists()
        )
        unconfirmed = (
            sa.select(sa.literal(1))
            .where(
                owner.c.executor_id == ws.c.executor_id,
                sa.or_(
                    owner.c.healthy_since.is_(None),
                    owner.c.heartbeat_at <= ws.c.updated_at + rules.CLOCK_SLACK_MS,
                ),
                not_dead(owner),
            )
            .correlate_except(owner)
            .exists()
        )
        return sa.or_(listed, unconfirmed)

    def get(self, workflow_id: str) -> WorkflowRecord | None:
        with self._single_reads() as conn:
            return records(conn, [workflow_id]).get(workflow_id)

    def steps(self, workflow_id: str) -> list[StepRecord] | None:
        """The workflow's steps in order, or None when no workflow has this id."""
        with self._single_reads() as conn:
            return read_steps(conn, workflow_id)

    def begin(self) -> AbstractContextManager[sa.Connection]:
        """A transaction of the caller's (a batch's writes and the reads that decide them)."""
        return self._engine.begin()


def records(conn: sa.Connection, workflow_ids: Sequence[str]) -> dict[str, WorkflowRecord]:
    """The workflows of these ids that exist, by id, read in the caller's transaction."""
    rows = conn.execute(_RECORDS_BY_ID, {"ids": list(workflow_ids)})
    return {row.workflow_uuid: _record(row) for row in rows}


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


def page_query(limit: int, after: PageKey | None, status: str | None) -> sa.Select[Any]:
    """One page of the listing, newest first, `limit` rows after `after` (values bound)."""
    statement, values = page_statement(limit, after, status)
    return statement.params(values)


def page_statement(
    limit: int, after: PageKey | None, status: str | None
) -> tuple[sa.Select[Any], dict[str, Any]]:
    """The statement of one page (built once per shape) and the values for it."""
    values: dict[str, Any] = {"limit": limit}
    if after is not None:
        values |= {"after_created_at": after.created_at_ms, "after_id": after.workflow_id}
    if status is not None:
        values["status"] = status
    return _page_statement(after is not None, status is not None), values


@cache
def _page_statement(paged: bool, filtered: bool) -> sa.Select[Any]:
    """The listing's statement of one shape, built once (building one took a millisecond).

    The page's rows are chosen first, in a subquery of their own, and only those rows are joined
    to their inputs and events: PostgreSQL never moves a join into a subquery with a LIMIT, so
    the plan cannot read the whole history, whatever the table statistics say (before the first
    ANALYZE, a single flat query joined every row to its inputs and then sorted them).
    """
    ws = workflow_status
    page = sa.select(*_status_columns(ws))
    if filtered:
        page = page.where(ws.c.status == sa.bindparam("status", type_=sa.Text))
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
        "status",
        "queue_name",
        "executor_id",
        "application_version",
        "priority",
        "created_at",
        "updated_at",
        "serialization",
        "inputs",
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

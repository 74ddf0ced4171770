"""The API's reads of workflows on the documented DBOS system tables, one round trip each."""

from collections.abc import Collection
from contextlib import AbstractContextManager

import sqlalchemy as sa

from services.api.listing import (
    PLANNED_WITHOUT_SORTS,
    PageFilter,
    PageKey,
    WorkflowRecord,
    page_statement,
    plan_pages_without_sorting,
    record,
    records,
)
from services.api.steps import StepRecord, read_steps
from services.contract import fleet as rules
from services.contract.dbos_tables import (
    now_ms,
    with_schemas,
    workflow_status,
)
from services.contract.fleet import executions, heartbeats


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
        self, limit: int, after: PageKey | None, only: PageFilter | None = None
    ) -> list[WorkflowRecord]:
        """Newest first; `limit` rows after `after`, with progress, in one query."""
        only = only or PageFilter()
        query, values = page_statement(limit, after, only)
        by_status_alone = only.workflows is None
        if not (by_status_alone and only.status in PLANNED_WITHOUT_SORTS):
            with self._single_reads() as conn:
                return [record(row) for row in conn.execute(query, values)]
        with self._engine.connect() as conn:
            plan_pages_without_sorting(conn)
            return [record(row) for row in conn.execute(query, values)]

    def _single_reads(self) -> sa.Connection:
        """A connection for reads of one statement each: on PostgreSQL no transaction around
        them (no BEGIN and ROLLBACK round trips, a third of a page's time on the wire). SQLite
        keeps its connections as they are: handed back from autocommit, they would lose the
        IMMEDIATE transactions its writers rely on."""
        conn = self._engine.connect()
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def deduplication_holder(self, queue_name: str, deduplication_id: str | None) -> str | None:
        """The workflow holding a deduplication id on a queue (queued or running), if any."""
        if deduplication_id is None:
            return None
        ws = workflow_status
        with self._engine.connect() as conn:
            holder: str | None = conn.execute(
                sa.select(ws.c.workflow_uuid).where(
                    ws.c.queue_name == queue_name, ws.c.deduplication_id == deduplication_id
                )
            ).scalar_one_or_none()
        return holder

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

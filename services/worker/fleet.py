"""The worker fleet's own SQL: joining, heartbeats, leaving, and recovery of dead workers' work.

The tables and the "alive" and "orphaned" rules are the contract's (services.contract.fleet):
the API reads the same ones. Heartbeats run on an engine of their own, so busy workflows or
slow housekeeping can never make a live worker miss them.
"""

from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa

from services.contract import fleet as rules
from services.contract.dbos_tables import (
    REQUEST_ID_ATTRIBUTE,
    string_attribute,
    with_schemas,
    workflow_status,
)
from services.contract.fleet import executions, heartbeats
from services.worker.database import try_lock

FORGET_EXECUTORS_AFTER_MS = 24 * 3600 * 1000

# Key of the PostgreSQL advisory lock: one worker at a time recovers.
_RECOVERY_LOCK = 0x7177_0002

# Why a recovery round did nothing: another worker held the lock, or this worker's own
# heartbeats were not healthy long enough to judge anyone else.
Skipped = Literal["locked", "unhealthy"]


@dataclass(frozen=True)
class WorkflowRow:
    status: str
    created_at_ms: int
    started_at_ms: int | None
    recovery_attempts: int
    # The token of the execution that owns the workflow (DBOS's claim writes it).
    owner_xid: str | None
    queue_name: str | None = None
    # The id of the HTTP request that enqueued it, when the API did.
    request_id: str | None = None


class FleetStore:
    def __init__(self, heartbeat_engine: sa.Engine, engine: sa.Engine) -> None:
        self._dialect = engine.dialect.name
        self._heartbeat_engine = with_schemas(heartbeat_engine)
        self._engine = with_schemas(engine)
        # The executions the last committed heartbeat reported; None: rewrite them all.
        self._reported: frozenset[str] | None = None

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def register(
        self,
        executor_id: str,
        application_version: str,
        hostname: str,
        running: Callable[[], frozenset[str]] = frozenset,
        grace_ms: int | None = None,
    ) -> None:
        """Join the fleet: (re)write this executor's row as alive and not stopped, with the
        executions it runs (none at start; some when it joins again after being forgotten)."""
        now = rules.clock_ms(self._dialect)
        with self._reporting() as conn:
            conn.execute(sa.delete(heartbeats).where(heartbeats.c.executor_id == executor_id))
            conn.execute(sa.delete(executions).where(executions.c.executor_id == executor_id))
            conn.execute(
                sa.insert(heartbeats).values(
                    executor_id=executor_id,
                    application_version=application_version,
                    hostname=hostname,
                    started_at=now,
                    heartbeat_at=now,
                    healthy_since=now,
                    grace_ms=grace_ms,
                )
            )
            self._reported = frozenset()
            current = running()
            self._report(conn, executor_id, current)
        self._reported = current

    def heartbeat(
        self, executor_id: str, max_gap_ms: int, running: Callable[[], frozenset[str]]
    ) -> bool:
        """Record that this executor is alive now, with the executions it runs; False if it
        is stopped or forgotten. Never revives a stopped executor.

        A gap of more than `max_gap_ms` since the previous heartbeat restarts `healthy_since`:
        the reaper trusts its own view only after a grace period of heartbeats without one.
        """
        hb, now = heartbeats, rules.clock_ms(self._dialect)
        unbroken = sa.and_(hb.c.healthy_since.is_not(None), hb.c.heartbeat_at >= now - max_gap_ms)
        with self._reporting() as conn:
            updated = conn.execute(
                sa.update(hb)
                .where(hb.c.executor_id == executor_id, hb.c.stopped_at.is_(None))
                .values(
                    healthy_since=sa.case((unbroken, hb.c.healthy_since), else_=now),
                    heartbeat_at=now,
                )
            ).rowcount
            if not updated:
                return False
            # Read after the heartbeat's time was taken: whatever ran then is listed.
            current = running()
            self._report(conn, executor_id, current)
        self._reported = current
        return True

    @contextmanager
    def _reporting(self) -> Iterator[sa.Connection]:
        """A heartbeat-engine transaction that reports executions: if it fails, whatever it
        wrote may or may not be committed, so the next report rewrites them all."""
        try:
            with self._heartbeat_engine.begin() as conn:
                yield conn
        except BaseException:
            self._reported = None
            raise

    def _report(self, conn: sa.Connection, executor_id: str, current: frozenset[str]) -> None:
        ex, mine = executions, executions.c.executor_id == executor_id
        reported = self._reported
        if reported is None:
            conn.execute(sa.delete(ex).where(mine))
            reported = frozenset()
        if gone := reported - current:
            conn.execute(sa.delete(ex).where(mine, ex.c.workflow_id.in_(gone)))
        if new := current - reported:
            conn.execute(
                sa.insert(ex), [{"executor_id": executor_id, "workflow_id": w} for w in new]
            )

    def workflow_rows(self, workflow_ids: Collection[str]) -> dict[str, WorkflowRow]:
        """What starting executions and the worker's metrics need to know of their workflows,
        in one query (services.worker.row_reads gathers the executions that start together)."""
        ws = workflow_status
        query = sa.select(
            ws.c.workflow_uuid,
            ws.c.status,
            ws.c.created_at,
            ws.c.started_at_epoch_ms,
            ws.c.recovery_attempts,
            ws.c.owner_xid,
            ws.c.queue_name,
            ws.c.attributes,
        ).where(ws.c.workflow_uuid.in_(list(workflow_ids)))
        with self._engine.connect() as conn:
            return {
                row[0]: WorkflowRow(
                    row[1],
                    row[2],
                    row[3],
                    row[4] or 0,
                    row[5],
                    row[6],
                    string_attribute(row[7], REQUEST_ID_ATTRIBUTE),
                )
                for row in conn.execute(query)
            }

    def mark_stopped(self, executor_id: str) -> None:
        with self._heartbeat_engine.begin() as conn:
            conn.execute(
                sa.update(heartbeats)
                .where(heartbeats.c.executor_id == executor_id)
                .values(stopped_at=rules.clock_ms(self._dialect))
            )
            conn.execute(sa.delete(executions).where(executions.c.executor_id == executor_id))

    def recover_orphans(
        self, queue_names: Collection[str], executor_id: str, grace_ms: int, max_gap_ms: int
    ) -> int | Skipped:
        """Put PENDING work of dead executors on these queues back on its queue; the number of
        workflows.

        Same effect as DBOS's own recovery: ENQUEUED, ownership cleared so a superseded execution
        stops at its next checkpoint, recovery attempts kept so a poison workflow still ends in
        MAX_RECOVERY_ATTEMPTS_EXCEEDED.

        This worker is the witness (services.contract.fleet.silent_while_witnessed): it takes
        the work of an executor only if that one stayed silent for the grace period while this
        one's own heartbeats reached the database without a gap, as recorded; after a stall of
        the database every heartbeat is stale, its own included, and nobody is judged until
        someone has beaten through a whole grace period again. The rule sits in the UPDATE
        itself, so what it judges and what it changes are one statement.
        """
        ws, hb = workflow_status, heartbeats
        now = rules.transaction_clock_ms(self._dialect)
        with self._engine.begin() as conn:
            if not try_lock(conn, _RECOVERY_LOCK):
                return "locked"
            healthy = conn.execute(
                sa.select(sa.literal(1)).where(
                    hb.c.executor_id == executor_id,
                    hb.c.stopped_at.is_(None),
                    hb.c.heartbeat_at >= now - max_gap_ms,
                    hb.c.healthy_since <= now - grace_ms,
                )
            ).first()
            if healthy is None:
                return "unhealthy"
            me = heartbeats.alias("witness")
            judged_by_me = (
                sa.select(sa.literal(1))
                .where(
                    me.c.executor_id == executor_id,
                    me.c.heartbeat_at >= now - max_gap_ms,
                    rules.owner_is_gone(
                        ws.c.executor_id, ws.c.updated_at, grace_ms, rules.by_witness(me)
                    ),
                )
                .correlate_except(me)
                .exists()
            )
            recovered = conn.execute(
                sa.update(ws)
                .where(
                    ws.c.status == "PENDING", ws.c.queue_name.in_(list(queue_names)), judged_by_me
                )
                .values(status="ENQUEUED", owner_xid=None, started_at_epoch_ms=None, updated_at=now)
            ).rowcount
            self._forget_long_gone(conn, now)
            return int(recovered)

    def _forget_long_gone(self, conn: sa.Connection, now: sa.ColumnElement[int]) -> None:
        # Under an autoscaler every pod is a new executor: drop those gone for a day that
        # hold no work (NOT EXISTS: a NULL executor_id must not make NOT IN match nothing).
        ws, hb = workflow_status, heartbeats
        holds_work = (
            sa.select(sa.literal(1))
            .where(ws.c.status == "PENDING", ws.c.executor_id == hb.c.executor_id)
            .exists()
        )
        conn.execute(
            sa.delete(hb).where(
                sa.func.coalesce(hb.c.stopped_at, hb.c.heartbeat_at)
                < now - FORGET_EXECUTORS_AFTER_MS,
                ~holds_work,
            )
        )
        conn.execute(
            sa.delete(executions).where(
                ~sa.select(sa.literal(1))
                .where(hb.c.executor_id == executions.c.executor_id)
                .exists()
            )
        )

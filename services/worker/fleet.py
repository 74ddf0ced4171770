"""The worker fleet's own SQL: heartbeats, orphan recovery and retention, in one place.

The tables and the "alive" and "orphaned" rules are the contract's (services.contract.fleet):
the API reads the same ones. Heartbeats run on an engine of their own, so busy workflows or
slow housekeeping can never make a live worker miss them.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa

from services import contract
from services.contract import fleet as rules
from services.contract.fleet import executions, heartbeats

# DBOS's tables, as far as this module touches them (schema "dbos" on PostgreSQL).
_dbos = sa.MetaData()
workflow_status = sa.Table(
    "workflow_status",
    _dbos,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("status", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("queue_name", sa.Text),
    sa.Column("executor_id", sa.Text),
    sa.Column("owner_xid", sa.Text),
    sa.Column("started_at_epoch_ms", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("recovery_attempts", sa.BigInteger),
    schema="dbos",
)
# Payload tables without a foreign key to workflow_status (the others cascade on delete),
# as DBOS's own delete_workflows does.
_payload_tables = [
    sa.Table(name, _dbos, sa.Column("workflow_uuid", sa.Text), schema="dbos")
    for name in ("workflow_input", "workflow_output", "operation_outputs")
]
FINISHED_STATUSES = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")

FORGET_EXECUTORS_AFTER_MS = 24 * 3600 * 1000

# Keys of PostgreSQL advisory locks: one process at a time does each job, and one job never
# waits for the other.
_RECOVERY_LOCK = 0x7177_0002
_RETENTION_LOCK = 0x7177_0003

# Why a recovery round did nothing: another worker held the lock, or this worker's own
# heartbeats were not healthy long enough to judge anyone else.
Skipped = Literal["locked", "unhealthy"]


@dataclass(frozen=True)
class WorkflowRow:
    status: str
    created_at_ms: int
    started_at_ms: int | None
    recovery_attempts: int


def with_schemas(engine: sa.Engine) -> sa.Engine:
    """The engine, with the tables' schemas mapped for its database (SQLite has only one)."""
    dialect = engine.dialect.name
    translate = rules.translate_schemas(dialect)
    if dialect != "postgresql":
        translate["dbos"] = None
    return engine.execution_options(schema_translate_map=translate)


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

    def register(self, executor_id: str, application_version: str, hostname: str) -> None:
        """Join the fleet: (re)write this executor's row as alive and not stopped."""
        now = rules.clock_ms(self._dialect)
        with self._heartbeat_engine.begin() as conn:
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
                )
            )
        self._reported = frozenset()

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
        try:
            with self._heartbeat_engine.begin() as conn:
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
        except BaseException:
            self._reported = None
            raise
        self._reported = current
        return True

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

    def workflow_row(self, workflow_id: str) -> WorkflowRow | None:
        """What the worker's metrics need to know of one workflow."""
        ws = workflow_status
        query = sa.select(
            ws.c.status, ws.c.created_at, ws.c.started_at_epoch_ms, ws.c.recovery_attempts
        ).where(ws.c.workflow_uuid == workflow_id)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else WorkflowRow(row[0], row[1], row[2], row[3] or 0)

    def mark_stopped(self, executor_id: str) -> None:
        with self._heartbeat_engine.begin() as conn:
            conn.execute(
                sa.update(heartbeats)
                .where(heartbeats.c.executor_id == executor_id)
                .values(stopped_at=rules.clock_ms(self._dialect))
            )
            conn.execute(sa.delete(executions).where(executions.c.executor_id == executor_id))

    def recover_orphans(
        self, queue_name: str, executor_id: str, grace_ms: int, max_gap_ms: int
    ) -> int | Skipped:
        """Put PENDING work of dead executors back on its queue; the number of workflows.

        Same effect as DBOS's own recovery: ENQUEUED, ownership cleared so a superseded execution
        stops at its next checkpoint, recovery attempts kept so a poison workflow still ends in
        MAX_RECOVERY_ATTEMPTS_EXCEEDED.

        Only while this executor's own heartbeats, as the database saw them, have gone without
        a gap for the grace period: after a stall of the database (or of this worker) every
        heartbeat is stale, its own included, and nobody may be judged until they had time to
        beat again. All times are the transaction's start, never later than what it reads.
        """
        ws, hb = workflow_status, heartbeats
        now = rules.transaction_clock_ms(self._dialect)
        with self._engine.begin() as conn:
            if not self._try_lock(conn, _RECOVERY_LOCK):
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
            dead_owner = rules.owner_is_gone(
                ws.c.executor_id, ws.c.updated_at, now, grace_ms, self._dialect
            )
            recovered = conn.execute(
                sa.update(ws)
                .where(ws.c.status == "PENDING", ws.c.queue_name == queue_name, dead_owner)
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

    def delete_finished(
        self, workflow_name: str, older_than_ms: int, batch_size: int
    ) -> int | None:
        """Delete one batch of finished workflows older than the age, with everything they own.

        By workflow name, not queue: DBOS clears the queue of cancelled and dead-lettered rows.
        The DELETE checks status and age again, so a row resumed since it was picked stays.
        None when another worker is at it.
        """
        ws = workflow_status
        cutoff = rules.clock_ms(self._dialect) - older_than_ms
        old_and_finished = (
            ws.c.name == workflow_name,
            ws.c.status.in_(FINISHED_STATUSES),
            ws.c.created_at < cutoff,
            sa.func.coalesce(ws.c.completed_at, ws.c.updated_at) < cutoff,
        )
        batch = (
            sa.select(ws.c.workflow_uuid)
            .where(*old_and_finished)
            .order_by(ws.c.created_at)
            .limit(batch_size)
            .scalar_subquery()
        )
        with self._engine.begin() as conn:
            if not self._try_lock(conn, _RETENTION_LOCK):
                return None
            deleted = list(
                conn.execute(
                    sa.delete(ws)
                    .where(ws.c.workflow_uuid.in_(batch), *old_and_finished)
                    .returning(ws.c.workflow_uuid)
                ).scalars()
            )
            if deleted:
                # These carry no foreign key to workflow_status; the other tables cascade.
                for table in _payload_tables:
                    conn.execute(sa.delete(table).where(table.c.workflow_uuid.in_(deleted)))
            return len(deleted)

    def _try_lock(self, conn: sa.Connection, key: int) -> bool:
        # SQLite transactions here are IMMEDIATE: writers are already serialized.
        if self._dialect != "postgresql":
            return True
        return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar())


def create_engine(
    database_url: str, *, pool_size: int, timeout_seconds: float, name: str = "fleet"
) -> sa.Engine:
    """A small engine for fleet bookkeeping, apart from DBOS's pool, where nothing waits
    longer than `timeout_seconds`: not for a pooled connection, a new connection, a lock, a
    statement, or (on PostgreSQL) an unacknowledged network write."""
    url = sa.make_url(database_url)
    timeout_ms = max(1, int(timeout_seconds * 1000))
    if url.get_backend_name() == "postgresql":
        options = " ".join(
            f"-c {setting}={timeout_ms}"
            for setting in (
                "statement_timeout",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
            )
        )
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=timeout_seconds,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": max(2, int(timeout_seconds + 0.999)),
                "application_name": f"{contract.APP_NAME}-{name}",
                "options": options,
                # A silent network (a blackholed address after failover): the kernel gives
                # up on unacknowledged data, and idle connections are probed.
                "tcp_user_timeout": max(1000, 2 * timeout_ms),
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=timeout_seconds
    )

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute(f"PRAGMA busy_timeout={timeout_ms}")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine

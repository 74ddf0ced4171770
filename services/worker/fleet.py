"""The worker fleet's own SQL: heartbeats, orphan recovery and retention, in one place.

Times are the database's clock in epoch milliseconds, so workers on hosts with skewed clocks
still agree on who is alive.
"""

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services import contract

_metadata = sa.MetaData()
heartbeats = sa.Table(
    contract.HEARTBEATS_TABLE,
    _metadata,
    sa.Column("executor_id", sa.Text, primary_key=True),
    sa.Column("application_version", sa.Text, nullable=False),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
    sa.Column("stopped_at", sa.BigInteger, nullable=True),
    schema=contract.FLEET_SCHEMA,
)
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
CLOCK_SLACK_MS = 1000

# Keys of PostgreSQL advisory locks: one process at a time does each job.
_SCHEMA_LOCK = 0x7177_0001
_MAINTENANCE_LOCK = 0x7177_0002


@dataclass(frozen=True)
class WorkflowRow:
    status: str
    created_at_ms: int
    started_at_ms: int | None
    recovery_attempts: int


class FleetStore:
    def __init__(self, engine: sa.Engine) -> None:
        self._postgres = engine.dialect.name == "postgresql"
        # On SQLite there are no schemas: every table lives in the main one.
        translate = {} if self._postgres else {contract.FLEET_SCHEMA: None, "dbos": None}
        self._engine = engine.execution_options(schema_translate_map=translate)
        self._fleet_schema = contract.FLEET_SCHEMA if self._postgres else None

    def grant(self, role: str) -> None:
        """Let an application role (one that may not run DDL) use the fleet table."""
        schema, quoted_role = contract.FLEET_SCHEMA, '"' + role.replace('"', '""') + '"'
        with self._engine.begin() as conn:
            conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO {quoted_role}'))
            conn.execute(
                sa.text(
                    f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{schema}" '
                    f"TO {quoted_role}"
                )
            )

    def _now_ms(self) -> sa.ColumnElement[int]:
        if self._postgres:
            return sa.cast(
                sa.func.extract("epoch", sa.func.clock_timestamp()) * 1000, sa.BigInteger
            )
        return sa.cast((sa.func.julianday("now") - 2440587.5) * 86_400_000, sa.BigInteger)

    def create_schema(self) -> None:
        """Create the heartbeat table if missing; safe when many workers start at once.

        Does nothing when the table exists, so a worker whose role may not run DDL starts fine
        once `python -m services.worker migrate` has run.
        """
        with self._engine.connect() as conn:
            if sa.inspect(conn).has_table(contract.HEARTBEATS_TABLE, schema=self._fleet_schema):
                return
        with self._engine.begin() as conn:
            if self._postgres:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{contract.FLEET_SCHEMA}"'))
            _metadata.create_all(conn, checkfirst=True)

    def register(self, executor_id: str, application_version: str, hostname: str) -> None:
        """Join the fleet: (re)write this executor's row as alive and not stopped."""
        now = self._now_ms()
        with self._engine.begin() as conn:
            conn.execute(sa.delete(heartbeats).where(heartbeats.c.executor_id == executor_id))
            conn.execute(
                sa.insert(heartbeats).values(
                    executor_id=executor_id,
                    application_version=application_version,
                    hostname=hostname,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def heartbeat(self, executor_id: str) -> bool:
        """Record that this executor is alive as of now; False if it is stopped or forgotten.

        Never revives a stopped executor: a heartbeat racing with shutdown must not undo it.
        """
        with self._engine.begin() as conn:
            return bool(
                conn.execute(
                    sa.update(heartbeats)
                    .where(
                        heartbeats.c.executor_id == executor_id, heartbeats.c.stopped_at.is_(None)
                    )
                    .values(heartbeat_at=self._now_ms())
                ).rowcount
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
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(heartbeats)
                .where(heartbeats.c.executor_id == executor_id)
                .values(stopped_at=self._now_ms())
            )

    def recover_orphans(self, queue_name: str, grace_ms: int) -> int | None:
        """Put PENDING work of dead executors back on its queue; None if another worker is at it.

        Same effect as DBOS's own recovery: ENQUEUED, ownership cleared so a superseded execution
        stops at its next checkpoint, recovery attempts kept so a poison workflow still ends in
        MAX_RECOVERY_ATTEMPTS_EXCEEDED.
        """
        now = self._now_ms()
        live = sa.select(heartbeats.c.executor_id).where(
            heartbeats.c.stopped_at.is_(None), heartbeats.c.heartbeat_at >= now - grace_ms
        )
        known = sa.select(heartbeats.c.executor_id)
        ws = workflow_status
        dead_owner = sa.or_(
            sa.and_(ws.c.executor_id.in_(known), ws.c.executor_id.not_in(live)),
            # An executor the table never saw (workers register before they claim anything, so
            # one from before the table existed): only once its row has been quiet for the grace
            # period, plus a second for SQLite's whole-second timestamps.
            sa.and_(
                ws.c.executor_id.not_in(known),
                ws.c.updated_at < now - grace_ms - CLOCK_SLACK_MS,
            ),
        )
        with self._engine.begin() as conn:
            if not self._try_lock(conn, _MAINTENANCE_LOCK):
                return None
            recovered = conn.execute(
                sa.update(ws)
                .where(ws.c.status == "PENDING", ws.c.queue_name == queue_name, dead_owner)
                .values(status="ENQUEUED", owner_xid=None, started_at_epoch_ms=None, updated_at=now)
            ).rowcount
            # Forget executors long gone (under an autoscaler every pod is a new one).
            conn.execute(
                sa.delete(heartbeats).where(
                    sa.func.coalesce(heartbeats.c.stopped_at, heartbeats.c.heartbeat_at)
                    < now - FORGET_EXECUTORS_AFTER_MS,
                    heartbeats.c.executor_id.not_in(
                        sa.select(ws.c.executor_id).where(ws.c.status == "PENDING")
                    ),
                )
            )
            return recovered

    def delete_finished(
        self, workflow_name: str, older_than_ms: int, batch_size: int
    ) -> int | None:
        """Delete one batch of finished workflows older than the age, with everything they own.

        By workflow name, not queue: DBOS clears the queue of cancelled and dead-lettered rows.
        The DELETE checks status and age again, so a row resumed since it was picked stays.
        """
        ws = workflow_status
        cutoff = self._now_ms() - older_than_ms
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
            if not self._try_lock(conn, _MAINTENANCE_LOCK):
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
        if not self._postgres:
            return True
        return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar())


def create_engine(database_url: str) -> sa.Engine:
    """A small engine for fleet bookkeeping, apart from the pool DBOS uses for workflows."""
    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_size=2,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args={"connect_timeout": 5, "application_name": "dbos-queue-worker-fleet"},
        )
    engine = sa.create_engine(url, pool_size=2, max_overflow=0)

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine

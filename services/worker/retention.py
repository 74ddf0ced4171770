"""Retention: finished workflows past their age are deleted, with everything they own, and the
audit log's rows past the same age."""

from collections.abc import Collection

import sqlalchemy as sa

from services.contract import fleet as rules
from services.contract.audit import EXPIRE_FUNCTION, audit_log
from services.contract.dbos_tables import (
    FINISHED_STATUSES,
    payload_tables,
    with_schemas,
    workflow_status,
)
from services.worker.database import try_lock

# Key of the PostgreSQL advisory lock: one worker at a time deletes, and recovery (its own lock)
# never waits for a long batch.
_RETENTION_LOCK = 0x7177_0003


class Retention:
    def __init__(self, engine: sa.Engine) -> None:
        self._engine = with_schemas(engine)
        self._dialect = engine.dialect.name

    def delete_finished(
        self, workflow_names: Collection[str], older_than_ms: int, batch_size: int
    ) -> int | None:
        """Delete one batch of finished workflows older than the age, with everything they own.

        By workflow name (the registry's types), not queue: DBOS clears the queue of cancelled
        and dead-lettered rows.
        The DELETE checks status and age again, so a row resumed since it was picked stays.
        None when another worker is at it.
        """
        ws = workflow_status
        cutoff = rules.clock_ms(self._dialect) - older_than_ms
        old_and_finished = (
            ws.c.name.in_(list(workflow_names)),
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
            if not try_lock(conn, _RETENTION_LOCK):
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
                for table in payload_tables:
                    conn.execute(sa.delete(table).where(table.c.workflow_uuid.in_(deleted)))
            return len(deleted)

    def delete_audit(self, older_than_ms: int, batch_size: int) -> int | None:
        """Delete one batch of audit rows older than the age (None when another worker is at
        it). On PostgreSQL through the owner's expiry function (services.contract.audit): the
        application role may not delete audit rows itself."""
        with self._engine.begin() as conn:
            if not try_lock(conn, _RETENTION_LOCK):
                return None
            if self._dialect == "postgresql":
                expired = conn.execute(
                    sa.text(f"SELECT {EXPIRE_FUNCTION}(:age, :batch)"),
                    {"age": older_than_ms, "batch": batch_size},
                ).scalar_one()
                return int(expired)
            log = audit_log
            cutoff = rules.clock_ms(self._dialect) - older_than_ms
            batch = (
                sa.select(log.c.id)
                .where(log.c.at_ms < cutoff)
                .order_by(log.c.at_ms)
                .limit(batch_size)
                .scalar_subquery()
            )
            return conn.execute(sa.delete(log).where(log.c.id.in_(batch))).rowcount

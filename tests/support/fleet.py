"""Direct reads of the system database for fleet tests (what the services wrote, unfiltered)."""

import sqlalchemy as sa

from tests.support.audited_worker import AUDIT_TABLE, audit_engine


class SystemDatabase:
    def __init__(self, database_url: str) -> None:
        self.engine = audit_engine(database_url)
        self._prefix = "" if self.engine.dialect.name == "sqlite" else "dbos."

    def close(self) -> None:
        self.engine.dispose()

    def statuses(self) -> dict[str, int]:
        query = f"SELECT status, count(*) FROM {self._prefix}workflow_status GROUP BY status"
        with self.engine.connect() as conn:
            return {status: int(n) for status, n in conn.execute(sa.text(query))}

    def pending_on(self, executor_id: str) -> set[str]:
        query = (
            f"SELECT workflow_uuid FROM {self._prefix}workflow_status "
            "WHERE status = 'PENDING' AND executor_id = :e"
        )
        with self.engine.connect() as conn:
            return set(conn.execute(sa.text(query), {"e": executor_id}).scalars())

    def rows(self, workflow_ids: set[str]) -> dict[str, tuple[str, str, int]]:
        """workflow id -> (status, executor_id, recovery_attempts)."""
        query = sa.text(
            f"SELECT workflow_uuid, status, executor_id, recovery_attempts "
            f"FROM {self._prefix}workflow_status WHERE workflow_uuid IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with self.engine.connect() as conn:
            return {
                r[0]: (r[1], r[2], int(r[3]))
                for r in conn.execute(query, {"ids": list(workflow_ids)})
            }

    def step_runs(self) -> dict[tuple[str, int], int]:
        """(workflow id, step index) -> how many times the step's body ran to completion."""
        query = f"SELECT workflow_id, step_index, count(*) FROM {AUDIT_TABLE} GROUP BY 1, 2"
        with self.engine.connect() as conn:
            return {(w, int(i)): int(n) for w, i, n in conn.execute(sa.text(query))}

    def overlapping_steps(self) -> list[tuple[str, int, int]]:
        """(workflow id, step index, step index) of step bodies of one workflow that ran at
        the same time: one execution runs its steps one after another, so any overlap means
        two executions of the workflow ran at once."""
        query = (
            f"SELECT a.workflow_id, a.step_index, b.step_index FROM {AUDIT_TABLE} a "
            f"JOIN {AUDIT_TABLE} b ON a.workflow_id = b.workflow_id "
            "AND a.started_ms < b.ended_ms AND b.started_ms < a.ended_ms "
            "AND (a.started_ms, a.step_index, a.executor_id) "
            "< (b.started_ms, b.step_index, b.executor_id)"
        )
        with self.engine.connect() as conn:
            return [(w, int(i), int(j)) for w, i, j in conn.execute(sa.text(query))]

    def leftovers(self, workflow_ids: set[str]) -> dict[str, int]:
        """Rows still referring to these workflows, per DBOS table that has a workflow_uuid."""
        counts = {}
        for table in (
            "workflow_status",
            "workflow_input",
            "workflow_output",
            "operation_outputs",
            "workflow_events",
            "workflow_events_history",
            "notifications",
            "streams",
        ):
            column = "destination_uuid" if table == "notifications" else "workflow_uuid"
            query = sa.text(
                f"SELECT count(*) FROM {self._prefix}{table} WHERE {column} IN :ids"
            ).bindparams(sa.bindparam("ids", expanding=True))
            with self.engine.connect() as conn:
                counts[table] = int(conn.execute(query, {"ids": list(workflow_ids)}).scalar_one())
        return counts

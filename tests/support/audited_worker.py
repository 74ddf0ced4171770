"""The real worker, with every completed step body recorded in a table of the tests' own.

Run as `python -m tests.support.audited_worker`; STEP_AUDIT_DATABASE_URL names the database.
Only the step's work is wrapped: DBOS, the workflow, the fleet code are the product's own.
With AUDIT_SLOW_START_SECONDS set, the first execution of each workflow in this process starts
its code that much later than DBOS claimed it, as a thread slow to be scheduled would.
"""

import os
import sys
import time
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from services.worker import workflows
from services.worker.__main__ import main
from services.worker.executions import EXECUTIONS

AUDIT_TABLE = "step_audit"


def _audited(engine: sa.Engine) -> None:
    work = workflows.perform_step

    def perform_step(index: int, step_seconds: float) -> None:
        # Wall-clock times: every worker of a test runs on this one host.
        started_ms = int(time.time() * 1000)
        work(index, step_seconds)
        ended_ms = int(time.time() * 1000)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {AUDIT_TABLE} "
                    "(workflow_id, step_index, executor_id, started_ms, ended_ms) "
                    "VALUES (:w, :i, :e, :s, :t)"
                ),
                {
                    "w": DBOS.workflow_id,
                    "i": index,
                    "e": os.environ["DBOS__VMID"],
                    "s": started_ms,
                    "t": ended_ms,
                },
            )

    workflows.perform_step = perform_step


def create_audit_table(database_url: str) -> None:
    engine = audit_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE IF NOT EXISTS {AUDIT_TABLE} "
                "(workflow_id TEXT NOT NULL, step_index INTEGER NOT NULL, executor_id TEXT, "
                "started_ms BIGINT NOT NULL, ended_ms BIGINT NOT NULL)"
            )
        )
    engine.dispose()


def audit_engine(database_url: str) -> sa.Engine:
    url = sa.make_url(database_url)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, pool_size=2)


def _slow_first_starts(seconds: float) -> None:
    running, started = EXECUTIONS.running, set()

    def slow_running(workflow_id: str | None) -> Any:
        if workflow_id not in started:
            started.add(workflow_id)
            time.sleep(seconds)
        return running(workflow_id)

    EXECUTIONS.running = slow_running  # type: ignore[method-assign]


if __name__ == "__main__":
    _audited(audit_engine(os.environ["STEP_AUDIT_DATABASE_URL"]))
    if slow := os.environ.get("AUDIT_SLOW_START_SECONDS"):
        _slow_first_starts(float(slow))
    sys.exit(main())

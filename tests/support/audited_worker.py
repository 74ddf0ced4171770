"""The real worker, with every completed step body recorded in a table of the tests' own.

Run as `python -m tests.support.audited_worker`; STEP_AUDIT_DATABASE_URL names the database, or
STEP_AUDIT_FILE a file to append to instead.
Only the step's work is wrapped: DBOS, the workflow, the fleet code are the product's own.
With AUDIT_SLOW_START_SECONDS set, the first execution of each workflow in this process starts
its code that much later than DBOS claimed it, as a thread slow to be scheduled would.
"""

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from dbos import DBOS

from services.worker import workflows
from services.worker.__main__ import main
from services.worker.executions import EXECUTIONS

AUDIT_TABLE = "step_audit"


Record = Callable[[dict[str, Any]], None]


def _audited(record: Record) -> None:
    work = workflows.perform_step

    def perform_step(index: int, step_seconds: float) -> None:
        # Wall-clock times: every worker of a test runs on this one host.
        started_ms = int(time.time() * 1000)
        work(index, step_seconds)
        record(
            {
                "workflow_id": DBOS.workflow_id,
                "step_index": index,
                "executor_id": os.environ["DBOS__VMID"],
                "started_ms": started_ms,
                "ended_ms": int(time.time() * 1000),
            }
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


def _into_table(engine: sa.Engine) -> Record:
    def record(row: dict[str, Any]) -> None:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {AUDIT_TABLE} "
                    "(workflow_id, step_index, executor_id, started_ms, ended_ms) "
                    "VALUES (:workflow_id, :step_index, :executor_id, :started_ms, :ended_ms)"
                ),
                row,
            )

    return record


def _into_file(path: str) -> Record:
    """One line per step, appended with a single write (atomic between processes): no
    database connection of the harness's own, where the fleet's connection budget is tested."""

    def record(row: dict[str, Any]) -> None:
        line = (json.dumps(row) + "\n").encode()
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    return record


def step_runs_in_file(path: Path) -> dict[tuple[str, int], int]:
    """(workflow id, step index) -> how many times the step's body ran to completion."""
    runs: dict[tuple[str, int], int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            key = (row["workflow_id"], int(row["step_index"]))
            runs[key] = runs.get(key, 0) + 1
    return runs


if __name__ == "__main__":
    if audit_file := os.environ.get("STEP_AUDIT_FILE"):
        _audited(_into_file(audit_file))
    else:
        _audited(_into_table(audit_engine(os.environ["STEP_AUDIT_DATABASE_URL"])))
    if slow := os.environ.get("AUDIT_SLOW_START_SECONDS"):
        _slow_first_starts(float(slow))
    sys.exit(main())

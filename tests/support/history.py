"""Workflow history written straight into a PostgreSQL system database, for reads at scale."""

import time

import sqlalchemy as sa

from services.contract import PROGRESS_EVENT_KEY, QUEUE_NAME, WORKFLOW_NAME

DAY_MS = 86_400_000


def insert_workflows(url: str, finished: int, enqueued: int, *, analyze: bool = True) -> None:
    """Rows as DBOS writes them: status, portable inputs, and a progress event when finished.

    `finished` SUCCESS workflows spread over the last 30 days, then `enqueued` ENQUEUED ones
    over the last hour. With `analyze` the tables are vacuumed and analyzed after; without, they
    are left as a fresh deployment has them after a burst: no statistics yet.
    """
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    now_ms = int(time.time() * 1000)
    statements = [
        # Finished history spread over the last 30 days, newest last.
        """INSERT INTO dbos.workflow_status (workflow_uuid, status, name, queue_name,
               executor_id, application_version, serialization, priority, created_at,
               updated_at, completed_at, recovery_attempts)
           SELECT 'f-' || i, 'SUCCESS', :name, :queue, 'bench-worker', '1', 'portable_json', 0,
                  CAST(:history_start AS bigint) + i * CAST(:history_step AS bigint),
                  CAST(:history_start AS bigint) + i * CAST(:history_step AS bigint) + 10000,
                  CAST(:history_start AS bigint) + i * CAST(:history_step AS bigint) + 10000, 1
           FROM generate_series(1, :finished) AS i""",
        """INSERT INTO dbos.workflow_events (workflow_uuid, key, value, serialization)
           SELECT 'f-' || i, :key, :progress, 'portable_json'
           FROM generate_series(1, :finished) AS i""",
        # The backlog: enqueued during the last hour.
        """INSERT INTO dbos.workflow_status (workflow_uuid, status, name, queue_name,
               application_version, serialization, priority, created_at, updated_at)
           SELECT 'q-' || i, 'ENQUEUED', :name, :queue, '1', 'portable_json', 0,
                  CAST(:backlog_start AS bigint) + i * CAST(:backlog_step AS bigint),
                  CAST(:now AS bigint)
           FROM generate_series(1, :enqueued) AS i""",
        """INSERT INTO dbos.workflow_input (workflow_uuid, inputs)
           SELECT workflow_uuid, :inputs
           FROM dbos.workflow_status""",
    ]
    params = {
        "name": WORKFLOW_NAME,
        "queue": QUEUE_NAME,
        "key": PROGRESS_EVENT_KEY,
        "progress": '{"steps_completed":10,"num_steps":10}',
        "inputs": '{"positionalArgs":[10,1.0],"namedArgs":{}}',
        "now": now_ms,
        "history_start": now_ms - 30 * DAY_MS,
        "history_step": 30 * DAY_MS // max(finished, 1),
        "backlog_start": now_ms - 3_600_000,
        "backlog_step": 3_600_000 // max(enqueued, 1),
        "finished": finished,
        "enqueued": enqueued,
    }
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)
    if analyze:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
    engine.dispose()

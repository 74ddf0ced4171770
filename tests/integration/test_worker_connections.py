"""What one worker holds open on PostgreSQL, counted in pg_stat_activity while it works: the
figure the connection budget (README, the chart's database.maxConnections check) is built on."""

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import NewDatabase
from tests.support.databases import database_name
from tests.support.processes import Api, start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres

POOL = 3
# DBOS's notification listener, the heartbeat engine's one, and the fleet engine's two.
BEYOND_THE_POOL = 4


def test_a_worker_holds_at_most_its_pool_and_four_more(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("postgres")
    worker = start_worker(
        url,
        tmp_path,
        WORKER_DB_POOL_SIZE=str(POOL),
        WORKER_CONCURRENCY="8",
        HEARTBEAT_INTERVAL_SECONDS="0.2",
        EXECUTOR_GRACE_SECONDS="3",
        REAPER_INTERVAL_SECONDS="0.2",
        RETENTION_INTERVAL_SECONDS="0.2",
    )
    api = Api(url, tmp_path)
    observer = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", poolclass=sa.NullPool)
    peak = 0
    done = threading.Event()

    def count() -> int:
        # The worker's connections: those to its database that are not the API's.
        with observer.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db "
                        "AND pid <> pg_backend_pid() AND application_name NOT LIKE :api"
                    ),
                    {"db": database_name(url), "api": "%api%"},
                ).scalar_one()
            )

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, count())
            done.wait(0.05)

    try:
        wait_worker_ready(worker)
        api.wait_ready()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ids = [api.enqueue(num_steps=3, step_seconds=0.2) for _ in range(24)]
        for workflow_id in ids:
            api.wait_status(workflow_id, "SUCCESS", timeout=60)
        done.set()
        watcher.join()
        print(f"\nworker connections: peak {peak} with WORKER_DB_POOL_SIZE={POOL}")
        assert 0 < peak <= POOL + BEYOND_THE_POOL
    finally:
        done.set()
        api.stop()
        worker.stop()
        observer.dispose()

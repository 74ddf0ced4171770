"""A worker busy with as many short workflows as it may run at once keeps its heartbeat cadence.

Heartbeats have a connection of their own: workflow threads, metric reads and housekeeping
must never hold them up long enough to make a live worker look dead.
"""

import itertools
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbos import DBOSClient

from services import contract
from tests.conftest import NewDatabase
from tests.support.fleet import SystemDatabase
from tests.support.polling import wait_for
from tests.support.processes import start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres

INTERVAL_SECONDS = 0.5
CONCURRENCY = 20
WORKFLOWS = 500


def test_heartbeats_keep_their_interval_under_full_load(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("postgres")
    worker = start_worker(
        url,
        tmp_path,
        HEARTBEAT_INTERVAL_SECONDS=str(INTERVAL_SECONDS),
        EXECUTOR_GRACE_SECONDS=str(4 * INTERVAL_SECONDS + 2),
        WORKER_CONCURRENCY=str(CONCURRENCY),
        WORKER_POLLING_INTERVAL_SECONDS="0.05",
    )
    db = SystemDatabase(url)
    beats: list[int] = []
    done = threading.Event()

    def sample() -> None:
        query = sa.text(
            "SELECT heartbeat_at FROM queue_worker.worker_heartbeats WHERE executor_id = :e"
        )
        while not done.wait(0.02):
            with db.engine.connect() as conn:
                value = conn.execute(query, {"e": worker.executor_id}).scalar()
            if value is not None and (not beats or value != beats[-1]):
                beats.append(int(value))

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        wait_worker_ready(worker)
        client = DBOSClient(system_database_url=url)
        options = {"queue_name": contract.QUEUE_NAME, "workflow_name": contract.WORKFLOW_NAME}
        for _ in range(WORKFLOWS):
            client.enqueue(options, 2, 0.0)  # type: ignore[arg-type]
        client.destroy()
        sampler.start()
        started = time.monotonic()
        wait_for(
            lambda: db.statuses().get("SUCCESS") == WORKFLOWS or None,
            timeout=300,
            interval=0.5,
            what=f"all {WORKFLOWS} workflows done; now {db.statuses()}",
        )
        busy_seconds = time.monotonic() - started
        done.set()
        sampler.join(timeout=5)

        gaps = [(b - a) / 1000 for a, b in itertools.pairwise(beats)]
        print(
            f"\nheartbeats under load: {WORKFLOWS} workflows in {busy_seconds:.1f} s, "
            f"{len(beats)} heartbeats, largest gap {max(gaps):.3f} s "
            f"(interval {INTERVAL_SECONDS} s)"
        )
        # The load lasted many intervals, so the cadence was really tested.
        assert busy_seconds > 6 * INTERVAL_SECONDS
        assert len(beats) >= busy_seconds / INTERVAL_SECONDS / 2
        # Never two intervals without a heartbeat: the reapers' rule for an unbroken run.
        assert max(gaps) < 2 * INTERVAL_SECONDS, gaps
    finally:
        done.set()
        db.close()
        worker.stop()

"""The resume's guard on the real databases: a cancelled execution that may still be inside a
step keeps its workflow from being resumed, whatever state the fleet's rows are in."""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from services.api.store import Store
from services.contract.dbos_tables import with_schemas, workflow_status
from services.contract.fleet import executions, heartbeats
from services.worker.database import create_engine
from tests.conftest import BACKENDS, NewDatabase

GRACE_MS = 10_000
RESUMABLE = ("CANCELLED",)


@dataclass
class Fleet:
    engine: sa.Engine
    store: Store

    def now_ms(self) -> int:
        query = (
            "SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)"
            if self.engine.dialect.name == "postgresql"
            else "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
        )
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text(query)).scalar_one())

    def executor(
        self,
        executor_id: str,
        heartbeat_ago_ms: int,
        healthy_for_ms: int | None,
        running: tuple[str, ...] = (),
    ) -> None:
        """An executor last heard from `heartbeat_ago_ms` ago, after an unbroken run of
        heartbeats `healthy_for_ms` long (None: a worker of the first release)."""
        now = self.now_ms()
        beat = now - heartbeat_ago_ms
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(heartbeats).values(
                    executor_id=executor_id,
                    application_version="1",
                    hostname="h",
                    started_at=beat - 3_600_000,
                    heartbeat_at=beat,
                    healthy_since=None if healthy_for_ms is None else beat - healthy_for_ms,
                )
            )
            for workflow_id in running:
                conn.execute(
                    sa.insert(executions).values(executor_id=executor_id, workflow_id=workflow_id)
                )

    def cancelled(self, workflow_id: str, executor_id: str, ago_ms: int) -> None:
        at = self.now_ms() - ago_ms
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(workflow_status).values(
                    workflow_uuid=workflow_id,
                    status="CANCELLED",
                    name="workflow",
                    executor_id=executor_id,
                    created_at=at - 60_000,
                    updated_at=at,
                    recovery_attempts=1,
                )
            )

    def resume(self, workflow_id: str) -> bool:
        return self.store.requeue(workflow_id, "workflow-queue", RESUMABLE, GRACE_MS)


@pytest.fixture(params=BACKENDS)
def fleet(request: pytest.FixtureRequest, new_migrated_database: NewDatabase) -> Iterator[Fleet]:
    url = new_migrated_database(request.param)
    engine = with_schemas(create_engine(url, pool_size=2, timeout_seconds=5))
    yield Fleet(engine, Store(engine))
    engine.dispose()


def test_not_before_its_worker_heartbeats_after_the_cancel(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=500, healthy_for_ms=60_000)
    fleet.cancelled("wf", "w", ago_ms=200)
    assert not fleet.resume("wf")


def test_once_its_worker_heartbeats_after_the_cancel_without_it(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=0, healthy_for_ms=60_000, running=("other",))
    fleet.cancelled("wf", "w", ago_ms=3_000)  # more than the clock slack before the beat
    assert fleet.resume("wf")


def test_not_while_its_worker_still_lists_it(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=0, healthy_for_ms=60_000, running=("wf",))
    fleet.cancelled("wf", "w", ago_ms=3_000)
    assert not fleet.resume("wf")


def test_not_while_another_live_worker_lists_it(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=0, healthy_for_ms=60_000)
    fleet.executor("x", heartbeat_ago_ms=0, healthy_for_ms=60_000, running=("wf",))
    fleet.cancelled("wf", "w", ago_ms=3_000)
    assert not fleet.resume("wf")


def test_not_after_a_stall_that_left_every_heartbeat_stale(fleet: Fleet) -> None:
    # The database hung for a minute: everyone's last heartbeat is as old, the worker's too.
    fleet.executor("w", heartbeat_ago_ms=60_000, healthy_for_ms=60_000, running=("wf",))
    fleet.executor("x", heartbeat_ago_ms=59_000, healthy_for_ms=60_000)
    fleet.cancelled("wf", "w", ago_ms=61_000)
    assert not fleet.resume("wf")


def test_once_another_worker_beat_through_the_grace_while_its_worker_was_silent(
    fleet: Fleet,
) -> None:
    fleet.executor("w", heartbeat_ago_ms=60_000, healthy_for_ms=60_000, running=("wf",))
    fleet.executor("x", heartbeat_ago_ms=0, healthy_for_ms=120_000)
    fleet.cancelled("wf", "w", ago_ms=61_000)
    assert fleet.resume("wf")


def test_not_while_a_worker_of_the_first_release_ran_it(fleet: Fleet) -> None:
    # It heartbeats, but reports no executions: only its death would tell.
    fleet.executor("v1", heartbeat_ago_ms=0, healthy_for_ms=None)
    fleet.cancelled("wf", "v1", ago_ms=3_000)
    assert not fleet.resume("wf")


def test_at_once_when_its_worker_stopped(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=0, healthy_for_ms=60_000, running=("wf",))
    with fleet.engine.begin() as conn:
        conn.execute(sa.update(heartbeats).values(stopped_at=heartbeats.c.heartbeat_at))
    fleet.cancelled("wf", "w", ago_ms=100)
    assert fleet.resume("wf")


def test_not_while_the_only_witness_has_beaten_for_less_than_the_grace(fleet: Fleet) -> None:
    # Its worker went silent a minute ago, but the only other worker has been getting through
    # for five seconds (it joined, or the database was back, only then): nobody can tell yet.
    fleet.executor("w", heartbeat_ago_ms=60_000, healthy_for_ms=60_000, running=("wf",))
    fleet.executor("x", heartbeat_ago_ms=0, healthy_for_ms=5_000)
    fleet.cancelled("wf", "w", ago_ms=61_000)
    assert not fleet.resume("wf")


def test_not_on_a_heartbeat_within_the_clock_slack_after_the_cancel(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=0, healthy_for_ms=60_000)
    fleet.cancelled("wf", "w", ago_ms=500)
    assert not fleet.resume("wf")


def test_a_worker_is_judged_by_the_grace_it_declared_when_longer(fleet: Fleet) -> None:
    fleet.executor("w", heartbeat_ago_ms=20_000, healthy_for_ms=60_000, running=("wf",))
    with fleet.engine.begin() as conn:  # it promised to beat within 30 s, not the API's 10 s
        conn.execute(sa.update(heartbeats).values(grace_ms=30_000))
    fleet.executor("x", heartbeat_ago_ms=0, healthy_for_ms=120_000)
    fleet.cancelled("wf", "w", ago_ms=21_000)
    assert not fleet.resume("wf")


def test_a_heartbeat_before_the_cancel_was_stamped_does_not_count(fleet: Fleet) -> None:
    """DBOS writes the cancel's transaction start; a stall before its commit could let a
    heartbeat that came before the commit (when a late execution could still start and pass
    its fence) look like one after the cancel. The API stamps the time after the commit."""
    fleet.executor("w", heartbeat_ago_ms=1_000, healthy_for_ms=60_000)
    fleet.cancelled("wf", "w", ago_ms=3_000)  # began 3 s ago; the heartbeat came after...
    fleet.store.stamp_cancelled("wf")  # ...but before the commit, stamped now
    assert not fleet.resume("wf")

"""The fleet tables' rules on the real databases: joining, heartbeats, health, recovery, leaving."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.contract.dbos_tables import with_schemas, workflow_status
from services.contract.fleet import SCHEMA_VERSION, executions, heartbeats
from services.worker import fleet_schema
from services.worker.database import create_engine
from services.worker.fleet import FleetStore
from services.worker.retention import Retention
from tests.conftest import BACKENDS, NewDatabase
from tests.support.processes import REPO_ROOT

GRACE_MS, MAX_GAP_MS = 3000, 1000


def _running(*ids: str) -> frozenset[str]:
    return frozenset(ids)


def _nothing() -> frozenset[str]:
    return frozenset()


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase
) -> Iterator[FleetStore]:
    url = new_migrated_database(request.param)
    engines = [create_engine(url, pool_size=1, timeout_seconds=5) for _ in range(2)]
    yield FleetStore(*engines)
    for engine in engines:
        engine.dispose()


def _row(store: FleetStore, executor_id: str) -> sa.Row[tuple[object, ...]] | None:
    with store.engine.connect() as conn:
        return conn.execute(
            sa.select(heartbeats).where(heartbeats.c.executor_id == executor_id)
        ).first()


def _age(store: FleetStore, executor_id: str, ms: int, *, healthy_too: bool = False) -> None:
    """Move an executor's times into the past, as if it had been silent for `ms`."""
    values: dict[str, object] = {"heartbeat_at": heartbeats.c.heartbeat_at - ms}
    if healthy_too:
        values["healthy_since"] = heartbeats.c.healthy_since - ms
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(heartbeats).where(heartbeats.c.executor_id == executor_id).values(values)
        )


def _pending(
    store: FleetStore, workflow_id: str, executor_id: str | None, queue: str = "workflow-queue"
) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(workflow_status).values(
                workflow_uuid=workflow_id,
                status="PENDING",
                name="workflow",
                queue_name=queue,
                executor_id=executor_id,
                created_at=0,
                updated_at=0,
                recovery_attempts=1,
            )
        )


def _status(store: FleetStore, workflow_id: str) -> str:
    ws = workflow_status
    with store.engine.connect() as conn:
        return str(
            conn.execute(sa.select(ws.c.status).where(ws.c.workflow_uuid == workflow_id)).scalar()
        )


def test_a_heartbeat_never_revives_a_stopped_executor(store: FleetStore) -> None:
    store.register("w-1", "1", "host")
    assert store.heartbeat("w-1", MAX_GAP_MS, _nothing) is True
    store.mark_stopped("w-1")

    assert store.heartbeat("w-1", MAX_GAP_MS, _nothing) is False  # racing with shutdown

    row = _row(store, "w-1")
    assert row is not None and row.stopped_at is not None


def test_registering_again_resets_the_row(store: FleetStore) -> None:
    store.register("w-2", "1", "old-host")
    store.mark_stopped("w-2")
    store.register("w-2", "2", "new-host")
    row = _row(store, "w-2")
    assert row is not None
    assert (row.application_version, row.hostname, row.stopped_at) == ("2", "new-host", None)
    assert store.heartbeat("unknown", MAX_GAP_MS, _nothing) is False


def test_a_gap_between_heartbeats_restarts_health(store: FleetStore) -> None:
    store.register("w-3", "1", "host")
    _age(store, "w-3", 10_000, healthy_too=True)
    store.heartbeat("w-3", MAX_GAP_MS, _nothing)  # within the gap of the aged one? no: 10 s
    row = _row(store, "w-3")
    assert row is not None and row.healthy_since == row.heartbeat_at

    _age(store, "w-3", 500, healthy_too=True)  # half a second ago: no gap
    before = _row(store, "w-3")
    store.heartbeat("w-3", MAX_GAP_MS, _nothing)
    after = _row(store, "w-3")
    assert before is not None and after is not None
    assert after.healthy_since == before.healthy_since < after.heartbeat_at


def test_heartbeats_report_the_running_executions(store: FleetStore) -> None:
    def listed() -> set[str]:
        ex = executions
        with store.engine.connect() as conn:
            query = sa.select(ex.c.workflow_id).where(ex.c.executor_id == "w-4")
            return set(conn.execute(query).scalars())

    store.register("w-4", "1", "host")
    store.heartbeat("w-4", MAX_GAP_MS, lambda: _running("a", "b"))
    assert listed() == {"a", "b"}
    store.heartbeat("w-4", MAX_GAP_MS, lambda: _running("b", "c"))
    assert listed() == {"b", "c"}
    store.mark_stopped("w-4")
    assert listed() == set()


def test_recovery_judges_others_only_while_its_own_heartbeats_are_unbroken(
    store: FleetStore,
) -> None:
    store.register("reaper", "1", "host")
    store.register("dead", "1", "host")
    _pending(store, "orphan", "dead")
    _age(store, "dead", 60_000)

    # Just joined: its own health is younger than the grace period.
    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == "unhealthy"
    # Healthy for long enough, but its own last heartbeat is older than the allowed gap, as
    # when its query sat behind a stalled database.
    _age(store, "reaper", 5_000, healthy_too=True)
    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == "unhealthy"
    assert _status(store, "orphan") == "PENDING"

    store.heartbeat("reaper", MAX_GAP_MS, _nothing)  # unbroken again, but only from now
    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == "unhealthy"
    _age(store, "reaper", 0, healthy_too=False)
    with store.engine.begin() as conn:  # as if it had been beating for the grace period
        conn.execute(
            sa.update(heartbeats)
            .where(heartbeats.c.executor_id == "reaper")
            .values(healthy_since=heartbeats.c.heartbeat_at - 2 * GRACE_MS)
        )
    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == 1
    assert _status(store, "orphan") == "ENQUEUED"


def test_recovery_takes_the_dead_workers_work_and_only_that(store: FleetStore) -> None:
    store.register("reaper", "1", "host")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(heartbeats).values(healthy_since=heartbeats.c.heartbeat_at - 2 * GRACE_MS)
        )
    store.register("live", "1", "host")
    store.register("dead", "1", "host")
    _age(store, "dead", 60_000)
    _pending(store, "of-the-dead", "dead")
    _pending(store, "of-the-living", "live")
    _pending(store, "of-the-reaper", "reaper")

    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == 1

    assert _status(store, "of-the-dead") == "ENQUEUED"
    assert _status(store, "of-the-living") == "PENDING"
    assert _status(store, "of-the-reaper") == "PENDING"


def test_long_gone_executors_are_forgotten_despite_work_without_an_owner(
    store: FleetStore,
) -> None:
    store.register("reaper", "1", "host")
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(heartbeats).values(healthy_since=heartbeats.c.heartbeat_at - 2 * GRACE_MS)
        )
    store.register("gone", "1", "host")
    store.mark_stopped("gone")
    _age(store, "gone", 2 * 24 * 3600 * 1000)
    with store.engine.begin() as conn:
        conn.execute(
            sa.update(heartbeats)
            .where(heartbeats.c.executor_id == "gone")
            .values(stopped_at=heartbeats.c.heartbeat_at)
        )
    _pending(store, "ownerless", None, "other-queue")  # a PENDING row with a NULL executor

    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, MAX_GAP_MS) == 0

    assert _row(store, "gone") is None
    assert _row(store, "reaper") is not None


@pytest.mark.postgres
def test_retention_does_not_wait_for_recovery(new_migrated_database: NewDatabase) -> None:
    url = new_migrated_database("postgres")
    engines = [create_engine(url, pool_size=1, timeout_seconds=5) for _ in range(3)]
    store = FleetStore(engines[0], engines[1])
    try:
        with engines[2].connect() as holder:
            # Another worker in the middle of a recovery round.
            holder.execute(sa.select(sa.func.pg_advisory_lock(0x7177_0002)))
            assert Retention(engines[1]).delete_finished(["workflow"], 1000, 10) == 0
            assert store.recover_orphans(["q"], "me", GRACE_MS, MAX_GAP_MS) == "locked"
            holder.execute(sa.select(sa.func.pg_advisory_unlock(0x7177_0002)))
    finally:
        for engine in engines:
            engine.dispose()


# The version 1 table, as the first release created it (no schema version kept).
_V1_DDL = (
    "CREATE TABLE {table} (executor_id TEXT PRIMARY KEY, application_version TEXT NOT NULL, "
    "hostname TEXT NOT NULL, started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL, "
    "stopped_at BIGINT)"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrate_upgrades_the_first_releases_table_and_keeps_its_rows(
    backend: str, new_database: NewDatabase
) -> None:
    url = new_database(backend)
    engine = with_schemas(create_engine(url, pool_size=1, timeout_seconds=5))
    postgres = engine.dialect.name == "postgresql"
    table = "queue_worker.worker_heartbeats" if postgres else "worker_heartbeats"
    try:
        with engine.begin() as conn:
            if postgres:
                conn.execute(sa.text("CREATE SCHEMA queue_worker"))
            conn.execute(sa.text(_V1_DDL.format(table=table)))
            conn.execute(sa.text(f"INSERT INTO {table} VALUES ('old', '1', 'h', 1, 2, NULL)"))
        with pytest.raises(fleet_schema.SchemaOutOfDate, match=r"version 1.*migrate"):
            fleet_schema.check(engine)

        assert fleet_schema.upgrade(engine) == 1
        assert fleet_schema.upgrade(engine) == SCHEMA_VERSION  # a second run changes nothing

        fleet_schema.check(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(heartbeats)).all()
            assert [(r.executor_id, r.heartbeat_at, r.healthy_since) for r in rows] == [
                ("old", 2, None)
            ]
            assert conn.execute(sa.select(sa.func.count()).select_from(executions)).scalar() == 0
    finally:
        engine.dispose()


def test_recovery_judges_by_recorded_heartbeats_not_by_when_its_statement_runs(
    store: FleetStore,
) -> None:
    """A reap that ran right after a stall would find every heartbeat stale against the clock;
    judged by the reaper's own recorded heartbeats, the other worker was not silent long."""
    store.register("reaper", "1", "host")
    store.register("busy", "1", "host")
    _pending(store, "running", "busy")
    with store.engine.begin() as conn:
        conn.execute(  # the reaper beat without a gap for a long time...
            sa.update(heartbeats)
            .where(heartbeats.c.executor_id == "reaper")
            .values(healthy_since=heartbeats.c.heartbeat_at - 10 * GRACE_MS)
        )
    _age(store, "busy", 1000)  # ...and "busy" beat a second before its last heartbeat
    # Then the database stalled for 20 s: everything recorded is 20 s old when the reap runs.
    _age(store, "reaper", 20_000, healthy_too=True)
    _age(store, "busy", 20_000)

    # (Its own freshness is waived here, to reach the rule itself.)
    assert store.recover_orphans(["workflow-queue"], "reaper", GRACE_MS, 60_000) == 0
    assert _status(store, "running") == "PENDING"


# Each process waits for the go file, then upgrades: all at the same moment.
_UPGRADER = """
import sys, time
from pathlib import Path
from services.contract import dbos_tables
from services.worker import database, fleet_schema
engine = database.create_engine(sys.argv[1], pool_size=1, timeout_seconds=10)
engine = dbos_tables.with_schemas(engine)
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
fleet_schema.upgrade(engine)
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_upgrades_of_the_first_releases_table_all_succeed(
    backend: str, new_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_database(backend)
    engine = with_schemas(create_engine(url, pool_size=1, timeout_seconds=10))
    postgres = engine.dialect.name == "postgresql"
    table = "queue_worker.worker_heartbeats" if postgres else "worker_heartbeats"
    go = tmp_path / "go"
    try:
        with engine.begin() as conn:
            if postgres:
                conn.execute(sa.text("CREATE SCHEMA queue_worker"))
            conn.execute(sa.text(_V1_DDL.format(table=table)))
        upgraders = [
            subprocess.Popen(
                [sys.executable, "-c", _UPGRADER, url, str(go)],
                cwd=REPO_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(6)
        ]
        for upgrader in upgraders:
            assert upgrader.stdout is not None and upgrader.stdout.readline() == "ready\n"
        go.touch()
        outcomes = [(p.communicate(timeout=60)[1], p.returncode) for p in upgraders]
        assert [err for err, code in outcomes if code != 0] == []
        fleet_schema.check(engine)
    finally:
        engine.dispose()

"""The fleet table's rules, on the real databases: joining, heartbeats, leaving."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from services.worker.fleet import FleetStore, create_engine, heartbeats
from tests.conftest import BACKENDS, NewDatabase


@pytest.fixture(params=BACKENDS)
def store(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase
) -> Iterator[FleetStore]:
    engine = create_engine(new_migrated_database(request.param))
    yield FleetStore(engine)
    engine.dispose()


def _row(store: FleetStore, executor_id: str) -> sa.Row[tuple[object, ...]] | None:
    with store._engine.connect() as conn:
        return conn.execute(
            sa.select(heartbeats).where(heartbeats.c.executor_id == executor_id)
        ).first()


def test_a_heartbeat_never_revives_a_stopped_executor(store: FleetStore) -> None:
    store.register("w-1", "1", "host")
    assert store.heartbeat("w-1") is True
    store.mark_stopped("w-1")

    assert store.heartbeat("w-1") is False  # late heartbeat racing with shutdown

    row = _row(store, "w-1")
    assert row is not None and row.stopped_at is not None


def test_registering_again_resets_the_row(store: FleetStore) -> None:
    store.register("w-2", "1", "old-host")
    store.mark_stopped("w-2")
    store.register("w-2", "2", "new-host")
    row = _row(store, "w-2")
    assert row is not None
    assert (row.application_version, row.hostname, row.stopped_at) == ("2", "new-host", None)
    assert store.heartbeat("unknown") is False

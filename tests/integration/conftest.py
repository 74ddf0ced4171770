"""A running system per backend: migrated database, API, and (for `stack`) a worker; or, for
tests of the API's database code, a migrated database's engine with a DBOSClient on it."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dbos import DBOSClient

from services.contract import dbos_tables as tables
from tests.conftest import BACKENDS, NewDatabase
from tests.support.processes import Api, WorkerProcess, start_worker, wait_worker_ready


@dataclass
class Stack:
    database_url: str
    api: Api
    worker: WorkerProcess | None


@pytest.fixture(scope="module", params=BACKENDS)
def stack(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase, workdir: Path
) -> Iterator[Stack]:
    """API and one worker sharing a fresh database."""
    url = new_migrated_database(request.param)
    worker = start_worker(url, workdir)
    api = Api(url, workdir)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        yield Stack(url, api, worker)
    finally:
        api.stop()
        worker.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def idle_stack(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase, workdir: Path
) -> Iterator[Stack]:
    """The API alone on a fresh database: whatever it enqueues stays ENQUEUED."""
    url = new_migrated_database(request.param)
    api = Api(url, workdir)
    try:
        api.wait_ready()
        yield Stack(url, api, None)
    finally:
        api.stop()


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, new_migrated_database: NewDatabase) -> Iterator[Any]:
    """(engine, client): a fresh migrated database of each backend, as the API reaches it."""
    url = sa.make_url(new_migrated_database(request.param))
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = tables.with_schemas(sa.create_engine(url))
    client = DBOSClient(system_database_engine=engine, dbos_system_schema=tables.DBOS_SCHEMA)
    yield engine, client
    client.destroy()
    engine.dispose()

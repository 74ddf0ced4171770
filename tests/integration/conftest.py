"""A running system per backend: migrated database, API, and (for `stack`) a worker."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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

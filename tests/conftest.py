"""Fixtures for the tiers that talk to a real database (integration, e2e)."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.databases import PostgresServer, migrate, postgres_server

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

NewDatabase = Callable[[str], str]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def new_database(
    postgres: PostgresServer | None, tmp_path_factory: pytest.TempPathFactory
) -> NewDatabase:
    """Returns a URL of a new, empty database of the given backend."""

    def create(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path_factory.mktemp("sqlite") / "dbos_queue_worker.sqlite"
            return f"sqlite:///{path}"
        if postgres is None:
            if os.environ.get("CI"):
                pytest.fail("no PostgreSQL server found or startable; CI must run these tests")
            pytest.skip("no PostgreSQL server found and none could be started here")
        return postgres.create_database()

    return create


@pytest.fixture(scope="session")
def new_migrated_database(new_database: NewDatabase) -> NewDatabase:
    def create(backend: str) -> str:
        url = new_database(backend)
        migrate(url)
        return url

    return create


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")

"""Fixtures for the tiers that talk to a real database (integration, e2e), and the check of the
external tools a test declares with `@pytest.mark.requires_tool(...)`."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.databases import (
    PostgresServer,
    ThrowawayPostgres,
    copy_sqlite_database,
    migrate,
    postgres_server,
)
from tests.support.tools import (
    HINT,
    TOOLS,
    check_tools,
    in_ci,
    missing,
    unknown_tools,
    why_missing,
)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]

NewDatabase = Callable[[str], str]


def _required_tools(item: pytest.Item) -> tuple[str, ...]:
    return tuple(name for marker in item.iter_markers("requires_tool") for name in marker.args)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tools = _required_tools(item)
        if (item.get_closest_marker("requires_tool") and not tools) or unknown_tools(tools):
            raise pytest.UsageError(
                f"{item.nodeid}: requires_tool{tools} names no tool or unknown ones; "
                f"known tools: {sorted(TOOLS)}"
            )
        # Skipped where a tool is missing, before any fixture runs (and reported at the test).
        if tools and not in_ci() and (reason := why_missing(tools)):
            item.add_marker(pytest.mark.skip(reason=f"{reason}; {HINT}"))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Before any fixture: in CI a missing tool fails the test, and starts nothing for nothing.
    # (Elsewhere the skip marker added at collection has done its work already.)
    if in_ci() and (tools := _required_tools(item)):
        check_tools(tools)


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
            missing(
                "no PostgreSQL server found and none could be started here",
                "run one at 127.0.0.1:5432, set TEST_DATABASE_URL, or install the postgresql "
                "package for a throwaway server",
            )
        return postgres.create_database()

    return create


@pytest.fixture(scope="session")
def new_migrated_database(
    postgres: PostgresServer | None,
    new_database: NewDatabase,
    tmp_path_factory: pytest.TempPathFactory,
) -> NewDatabase:
    """Returns a URL of a new database of the given backend, migrated as a deployment does.

    The real `python -m services.worker migrate` runs once per backend and session, on a
    template; each database is a copy of it (CREATE DATABASE ... TEMPLATE, or a file copy).
    """
    templates: dict[str, str] = {}

    def template(backend: str) -> str:
        if backend not in templates:
            url = new_database(backend)
            migrate(url)  # a subprocess: its connections are gone when it returns
            if postgres is not None and backend == "postgres":
                postgres.make_template(url)
            templates[backend] = url
        return templates[backend]

    def create(backend: str) -> str:
        source = template(backend)
        if backend == "sqlite":
            return copy_sqlite_database(source, tmp_path_factory.mktemp("sqlite"))
        assert postgres is not None
        return postgres.create_database(template=source)

    return create


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A started PostgreSQL server of the test's own, on a free port; removed after the test."""
    try:
        server = ThrowawayPostgres()
    except FileNotFoundError as exc:
        missing(str(exc), "install the Debian package postgresql")
    with server:
        yield server


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")

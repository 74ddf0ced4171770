"""Real databases for tests: a SQLite file, or a fresh database on a PostgreSQL server.

The server is TEST_DATABASE_URL when set; else the one at 127.0.0.1:5432 (user postgres, trust
auth); else a throwaway server started from the local PostgreSQL binaries.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresServer:
    """Creates and drops uniquely named databases on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = sa.make_url(admin_url).set(drivername="postgresql+psycopg")
        self._engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self._run_id = uuid.uuid4().hex[:8]
        self._count = 0
        self._created: list[str] = []

    def create_database(self) -> str:
        """A new empty database; returns its URL (plain postgresql:// as users write it)."""
        self._count += 1
        name = f"dbosqw_test_{self._run_id}_{self._count}"
        with self._engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self._created.append(name)
        url = self.admin_url.set(drivername="postgresql", database=name)
        return url.render_as_string(hide_password=False)

    def close(self) -> None:
        with self._engine.connect() as conn:
            for name in self._created:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._engine.dispose()


def _reachable(url: str) -> bool:
    engine = sa.create_engine(
        sa.make_url(url).set(drivername="postgresql+psycopg"),
        connect_args={"connect_timeout": 2},
    )
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextmanager
def postgres_server() -> Iterator[PostgresServer | None]:
    """The server to test against, or None when there is none and none can be started."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url is None and _reachable(LOCAL_SERVER_URL):
        url = LOCAL_SERVER_URL
    if url is not None:
        server = PostgresServer(url)
        try:
            yield server
        finally:
            server.close()
        return
    with _throwaway_server() as started_url:
        if started_url is None:
            yield None
            return
        server = PostgresServer(started_url)
        try:
            yield server
        finally:
            server.close()


class ThrowawayPostgres:
    """A PostgreSQL server of the test's own, from the local binaries, that can be stopped."""

    def __init__(self, port: int) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise FileNotFoundError("no PostgreSQL binaries under /usr/lib/postgresql")
        self._bin = Path(bindirs[-1])
        # Its own directory under /tmp: pytest's are private to the user running the tests.
        workdir = Path(tempfile.mkdtemp(prefix="dbosqw-pg-"))
        self._workdir = workdir
        self._datadir = workdir / "pgdata"
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._port = port
        # initdb refuses to run as root; run the server as the postgres user then.
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_user:
            shutil.chown(workdir, "postgres")
        self._run("initdb", "-D", self._datadir, "-U", "postgres", "-A", "trust")

    def _run(self, tool: str, *args: str | Path) -> None:
        subprocess.run([*self._as_user, self._bin / tool, *args], check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self._port} -k {self._workdir} -c listen_addresses=127.0.0.1"
        self._run(
            "pg_ctl",
            "-D",
            self._datadir,
            "-w",
            "-l",
            self._workdir / "pg.log",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a crash or failover."""
        self._run("pg_ctl", "-D", self._datadir, "-w", "-m", "fast", "stop")

    def remove(self) -> None:
        subprocess.run(
            [*self._as_user, self._bin / "pg_ctl", "-D", self._datadir, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self._workdir, ignore_errors=True)


@contextmanager
def _throwaway_server() -> Iterator[str | None]:
    try:
        server = ThrowawayPostgres(55432)
    except FileNotFoundError:
        yield None
        return
    try:
        server.start()
        yield server.url
    finally:
        server.remove()


def migrate(database_url: str) -> None:
    """Prepare the database the way a deployment does: `python -m services.worker migrate`."""
    subprocess.run(
        [sys.executable, "-m", "services.worker", "migrate"],
        env={**os.environ, "DBOS_SYSTEM_DATABASE_URL": database_url},
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        capture_output=True,
        timeout=120,
    )


def count_workflows(database_url: str) -> int:
    url = sa.make_url(database_url)
    table = "workflow_status" if url.get_backend_name() == "sqlite" else "dbos.workflow_status"
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()

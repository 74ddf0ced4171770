"""Real databases for tests: a SQLite file, or a fresh database on a PostgreSQL server.

The server is TEST_DATABASE_URL when set; else the one at 127.0.0.1:5432 (user postgres, trust
auth); else a throwaway server started from the local PostgreSQL binaries.
"""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.support.processes import free_port

LOCAL_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresServer:
    """Creates and drops uniquely named databases on one server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = sa.make_url(admin_url).set(drivername="postgresql+psycopg")
        self._engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self._run_id = uuid.uuid4().hex[:8]
        self._count = 0
        self._created: list[str] = []
        self._templates: set[str] = set()

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of `template` (a URL that `make_template` marked);
        returns its URL (plain postgresql:// as users write it)."""
        self._count += 1
        name = f"dbosqw_test_{self._run_id}_{self._count}"
        statement = f'CREATE DATABASE "{name}"'
        if template is not None:
            source = database_name(template)
            assert source in self._templates, f"{source} is not a template of this run"
            statement += f' TEMPLATE "{source}"'
        with self._engine.connect() as conn:
            conn.execute(sa.text(statement))
        self._created.append(name)
        return self.url_of(name)

    def make_template(self, url: str) -> None:
        """Freeze a prepared database as a template: nobody may connect to it any more, which
        CREATE DATABASE ... TEMPLATE requires. Its users must have disconnected (dispose
        engines; a subprocess that exited has)."""
        name = database_name(url)
        assert name in self._created, f"{name} was not created by this run"
        with self._engine.connect() as conn:
            conn.execute(
                sa.text(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
            )
        self._templates.add(name)

    def url_of(self, name: str) -> str:
        return self.admin_url.set(drivername="postgresql", database=name).render_as_string(
            hide_password=False
        )

    def close(self) -> None:
        with self._engine.connect() as conn:
            for name in self._created:
                if name in self._templates:  # a template cannot be dropped
                    conn.execute(sa.text(f'ALTER DATABASE "{name}" IS_TEMPLATE false'))
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._engine.dispose()


def database_name(url: str) -> str:
    name = sa.make_url(url).database
    assert name, f"no database in {url}"
    return name


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
    """A PostgreSQL server of the test's own, from the local binaries, that a test may stop,
    restart, or freeze (SIGSTOP) to play a database that hangs.

    `with ThrowawayPostgres() as server:` starts it on a free port and removes it at the end;
    FileNotFoundError when there are no PostgreSQL binaries here.
    """

    START_ATTEMPTS = 3  # a free port may be taken by someone else before the server binds it

    def __init__(self, port: int | None = None) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bindirs:
            raise FileNotFoundError("no PostgreSQL binaries under /usr/lib/postgresql")
        self._bin = Path(bindirs[-1])
        self._pick_port = port is None
        self.port = free_port() if port is None else port
        self._frozen: list[int] = []
        # Its own directory under /tmp: pytest's are private to the user running the tests.
        workdir = Path(tempfile.mkdtemp(prefix="dbosqw-pg-"))
        self._workdir = workdir
        self._datadir = workdir / "pgdata"
        # initdb refuses to run as root; run the server as the postgres user then.
        self._as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        try:
            if self._as_user:
                shutil.chown(workdir, "postgres")
            self._run("initdb", "-D", self._datadir, "-U", "postgres", "-A", "trust")
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def __enter__(self) -> "ThrowawayPostgres":
        try:
            self.start()
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def _run(self, tool: str, *args: str | Path) -> None:
        subprocess.run([*self._as_user, self._bin / tool, *args], check=True, capture_output=True)

    def start(self) -> None:
        for attempt in range(1, self.START_ATTEMPTS + 1):
            options = f"-p {self.port} -k {self._workdir} -c listen_addresses=127.0.0.1"
            log = self._workdir / "pg.log"
            try:
                self._run("pg_ctl", "-D", self._datadir, "-w", "-l", log, "-o", options, "start")
                return
            except subprocess.CalledProcessError as exc:
                if not self._pick_port or attempt == self.START_ATTEMPTS:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(
                        f"PostgreSQL did not start on port {self.port}: {exc.stderr!r}\n{text}"
                    ) from exc
                self.port = free_port()

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a crash or failover."""
        self._run("pg_ctl", "-D", self._datadir, "-w", "-m", "fast", "stop")

    def pids(self) -> list[int]:
        """The postmaster, then every process under it (backends, checkpointer, ...)."""
        pidfile = self._datadir / "postmaster.pid"
        try:
            postmaster = int(pidfile.read_text().split()[0])
        except (FileNotFoundError, IndexError) as exc:
            raise RuntimeError(f"the server is not running (no {pidfile})") from exc
        children = _children_by_parent()
        found = [postmaster]
        for pid in found:  # grows while it is walked: children of children too
            found.extend(children.get(pid, []))
        return found

    def freeze(self) -> None:
        """SIGSTOP the server: connections stay open, and everything sent to it waits."""
        stopped = self._frozen
        # The postmaster first, so it forks no backend that the loop would miss.
        while pending := [pid for pid in self.pids() if pid not in stopped]:
            for pid in pending:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

        # A signal is delivered when the process is next scheduled: return once all have
        # stopped, so whatever the caller sends next meets a frozen server.
        def running() -> dict[int, str]:
            # Only processes still under the postmaster: the pid of one that ended may already
            # belong to someone else (pids wrap at 32768 here, and threads use them too).
            server = set(self.pids())
            return {
                p: st for p in stopped if p in server and (st := _state(p)) not in STOPPED_OR_DEAD
            }

        deadline = time.monotonic() + 10
        while still := running():
            if time.monotonic() > deadline:
                raise AssertionError(f"server processes did not stop: {still} (pid: state)")
            time.sleep(0.01)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped (and anything of the server's that is stopped)."""
        targets = set(self._frozen)
        with contextlib.suppress(RuntimeError):
            targets.update(self.pids())
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self._frozen = []

    def remove(self) -> None:
        if self._frozen:
            self.thaw()  # a stopped server would not act on pg_ctl's signal
        subprocess.run(
            [*self._as_user, self._bin / "pg_ctl", "-D", self._datadir, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self._workdir, ignore_errors=True)


# Stopped (T, t); in uninterruptible I/O (D), where the stop takes effect before it runs again;
# or ended: a zombie (Z) whose parent, the stopped postmaster, cannot reap it.
STOPPED_OR_DEAD = ("T", "t", "D", "Z", "X", "gone")


def _state(pid: int) -> str:
    """The process's state letter from /proc ("T": stopped), or "gone"."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return text[text.rindex(")") + 2]


def _children_by_parent() -> dict[int, list[int]]:
    """Every process's direct children, from /proc (no procps needed)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while /proc was read
            continue
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses; split after it.
        ppid = int(text[text.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    return children


@contextmanager
def _throwaway_server() -> Iterator[str | None]:
    try:
        server = ThrowawayPostgres()
    except FileNotFoundError:
        yield None
        return
    with server:
        yield server.url


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


def copy_sqlite_database(source_url: str, directory: Path) -> str:
    """A copy of a SQLite database nobody has open (with its write-ahead log, if any)."""
    name = sa.make_url(source_url).database
    assert name, f"no file in {source_url}"
    source = Path(name)
    target = directory / source.name
    for suffix in ("", "-wal"):
        if (path := source.with_name(source.name + suffix)).exists():
            shutil.copyfile(path, target.with_name(target.name + suffix))
    return f"sqlite:///{target}"


def refuse_audit_rows(database_url: str, message: str, errcode: str = "P0001") -> None:
    """Make every insert into the audit log fail (a trigger raising `message` with SQLSTATE
    `errcode`): how a test makes the API's writes fail past its handlers, on PostgreSQL."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE FUNCTION queue_worker.refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    f"$$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '{errcode}'; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON queue_worker.audit_log "
                    "FOR EACH ROW EXECUTE FUNCTION queue_worker.refuse()"
                )
            )
    finally:
        engine.dispose()

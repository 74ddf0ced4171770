"""What the side-by-side benchmarks share: fresh databases, transaction counts, enqueueing,
worker processes (the project's and the bare DBOS reference), and percentiles."""

import math
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat

from services.contract import APP_NAME, APP_VERSION, QUEUE_NAME, WORKFLOW_NAME
from tests.support.databases import LOCAL_SERVER_URL, PostgresServer, database_name, migrate
from tests.support.processes import WorkerProcess, start_worker, wait_worker_ready

# The worker implementations compared: the project's, and DBOS used the plain way.
OURS = "services.worker"
BARE = "benchmarks.reference.bare_worker"
IMPLEMENTATIONS = {"ours": OURS, "bare DBOS": BARE}


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Databases:
    """Fresh migrated databases on one PostgreSQL server, copies of one migrated template.

    Transaction counts are read from pg_stat_database over a connection to another database,
    so reading them adds nothing to what they count."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._admin = sa.create_engine(server.admin_url, isolation_level="AUTOCOMMIT")
        template = server.create_database()
        migrate(template)
        # No autovacuum or autoanalyze worker adds its transactions to a measured database.
        engine = sa.create_engine(sa.make_url(template).set(drivername="postgresql+psycopg"))
        with engine.begin() as conn:
            tables = conn.execute(
                sa.text("SELECT schemaname, tablename FROM pg_tables WHERE schemaname = 'dbos'")
            ).all()
            for schema, table in tables:
                conn.execute(
                    sa.text(f'ALTER TABLE "{schema}"."{table}" SET (autovacuum_enabled = off)')
                )
        engine.dispose()
        server.make_template(template)
        self._template = template

    def fresh(self) -> str:
        return self.server.create_database(template=self._template)

    def transactions(self, url: str) -> tuple[int, int]:
        """Commits and rollbacks of the database, as far as its backends have reported them."""
        with self._admin.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = :name"
                ),
                {"name": database_name(url)},
            ).one()
        return int(row[0]), int(row[1])

    def settled_transactions(self, url: str, quiet_seconds: float = 1.5) -> tuple[int, int]:
        """The counts once they have stopped moving: every backend that ended has reported."""
        last, since = self.transactions(url), time.monotonic()
        while time.monotonic() - since < quiet_seconds:
            time.sleep(0.25)
            now = self.transactions(url)
            if now != last:
                last, since = now, time.monotonic()
        return last

    def connections(self, url: str, application_name_like: str = "%") -> int:
        with self._admin.connect() as conn:
            return int(
                conn.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = :name "
                        "AND application_name LIKE :app"
                    ),
                    {"name": database_name(url), "app": application_name_like},
                ).scalar_one()
            )

    def close(self) -> None:
        self._admin.dispose()


@contextmanager
def databases() -> Iterator[Databases]:
    """On TEST_DATABASE_URL's server, else 127.0.0.1:5432; every database dropped at the end."""
    server = PostgresServer(os.environ.get("TEST_DATABASE_URL", LOCAL_SERVER_URL))
    dbs = Databases(server)
    try:
        yield dbs
    finally:
        dbs.close()
        server.close()


def enqueue_options() -> EnqueueOptions:
    return {
        "queue_name": QUEUE_NAME,
        "workflow_name": WORKFLOW_NAME,
        "app_version": APP_VERSION,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }


def enqueue_many(
    url: str, count: int, num_steps: int, step_seconds: float, threads: int = 8
) -> float:
    """Enqueue `count` workflows in process from `threads` threads; returns workflows/s."""
    client = DBOSClient(system_database_url=url)
    try:
        options = enqueue_options()
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: client.enqueue(options, num_steps, step_seconds), range(count)))
        return count / (time.perf_counter() - started)
    finally:
        client.destroy()


def enqueue_in_transactions(url: str, transactions: int, per_transaction: int) -> float:
    """DBOS's own batch: `enqueue_in_transaction` many times per transaction; workflows/s."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    client = DBOSClient(system_database_engine=engine)
    try:
        options = enqueue_options()
        started = time.perf_counter()
        for _ in range(transactions):
            with engine.begin() as conn:
                for _ in range(per_transaction):
                    client.enqueue_in_transaction(conn, options, 1, 0.0)
        return transactions * per_transaction / (time.perf_counter() - started)
    finally:
        client.destroy()
        engine.dispose()


def wrk(url: str, connections: int, seconds: float, script: Path | None = None) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) from wrk's (Debian's) report, for GETs or what
    the Lua `script` sends; fails on any error reply."""
    threads = min(2, connections)
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            *(["-s", str(script)] if script is not None else []),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    assert bad is None and errors is None, f"wrk saw failed requests:\n{output}"
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    requests = re.search(r"(\d+) requests in ", output)
    assert rps and requests, f"no request rate in wrk's report:\n{output}"
    figures = {"rps": float(rps[1]), "requests": float(requests[1])}
    for percent in ("50", "90", "99"):
        match = re.search(rf"\s{percent}%\s+([\d.]+)(us|ms|s)\b", output)
        assert match, f"no {percent}% latency in wrk's report:\n{output}"
        value = float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
        figures[f"p{percent}_ms"] = value
    return figures


@dataclass
class Worker:
    process: WorkerProcess

    def stop(self) -> None:
        code = self.process.stop(timeout=60)
        assert code in (0, -15), f"worker exited with {code}:\n{self.process.log()}"


def register_queue(url: str, concurrency: int, polling_seconds: float) -> None:
    """Register the queue with the workers' settings, as the chart's migration Job does: the
    template's migration registered it with the defaults, and a worker whose queue thread found
    other settings in the database would start at their polling interval."""
    client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    try:
        client.register_queue(
            QUEUE_NAME, worker_concurrency=concurrency, polling_interval_sec=polling_seconds
        )
    finally:
        client.destroy()


@contextmanager
def workers(
    module: str, url: str, count: int, concurrency: int, polling_seconds: float, nice: int = 0
) -> Iterator[list[Worker]]:
    """`count` worker processes of `module`, ready; stopped (drained) on exit. The queue must
    be registered with the same settings (register_queue). `nice` lowers their CPU priority."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    started = [
        Worker(
            start_worker(
                url,
                workdir,
                module,
                DBOS__VMID=f"bench-{uuid.uuid4().hex[:8]}",
                WORKER_CONCURRENCY=str(concurrency),
                WORKER_POLLING_INTERVAL_SECONDS=str(polling_seconds),
                # The database is migrated, as the chart's migration Job leaves it.
                WORKER_RUN_MIGRATIONS="false",
            )
        )
        for _ in range(count)
    ]
    try:
        for worker in started:
            if nice:
                os.setpriority(os.PRIO_PROCESS, worker.process.pid, nice)
            wait_worker_ready(worker.process)
        yield started
    finally:
        for worker in started:
            worker.stop()

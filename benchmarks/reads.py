"""Reads under write load: the first page and an uncached scrape while workers drain a queue.

A database with 50,000 finished and 50,000 queued workflows, once with analyzed tables and once
as a fresh deployment has them after a burst (never analyzed: autovacuum is off on them for the
run, standing in for the minute before it first comes by). The API is timed idle, then while
two workers of concurrency 50 drain the queue.
"""

import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.measure import OURS, Databases, median, percentile, register_queue, workers
from tests.support.history import insert_workflows
from tests.support.polling import wait_for
from tests.support.processes import Api

TABLES = ("workflow_status", "workflow_input", "workflow_events")
PATHS = {"first page": "/workflows?limit=50", "uncached /metrics": "/metrics"}


def _prepare(url: str, analyzed: bool, finished: int, queued: int) -> None:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    if not analyzed:
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(sa.text(f"ALTER TABLE dbos.{table} SET (autovacuum_enabled = off)"))
    engine.dispose()
    insert_workflows(url, finished, queued, analyze=analyzed)
    register_queue(url, 50, 0.1)


def _time(api: Api, path: str, seconds: float) -> list[float]:
    """Latencies (ms) of back-to-back requests for `seconds`; any failure is reported."""
    durations, statuses = [], []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        response = api.http.get(path)
        durations.append((time.perf_counter() - started) * 1000)
        statuses.append(response.status_code)
    failed = [s for s in statuses if s != 200]
    assert not failed, f"{path}: {len(failed)} of {len(statuses)} requests failed ({failed[:5]})"
    return durations


def run(
    dbs: Databases, seconds: float, finished: int = 50_000, queued: int = 50_000
) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-reads-"))
    rows: list[dict[str, Any]] = []
    for analyzed in (True, False):
        url = dbs.fresh()
        _prepare(url, analyzed, finished, queued)
        api = Api(url, workdir)  # metrics uncached (API_METRICS_CACHE_SECONDS=0)
        try:
            api.wait_ready()
            for load in ("idle", "2 workers draining"):
                if load == "idle":
                    figures = {name: _time(api, path, seconds / 2) for name, path in PATHS.items()}
                else:
                    with workers(OURS, url, 2, 50, 0.1):
                        wait_for(
                            lambda api=api: _running(api) >= 50,  # type: ignore[misc]
                            timeout=60,
                            what="workers running workflows",
                        )
                        figures = {
                            name: _time(api, path, seconds / 2) for name, path in PATHS.items()
                        }
                for name, durations in figures.items():
                    row = {
                        "tables": "analyzed" if analyzed else "never analyzed",
                        "load": load,
                        "request": name,
                        "requests": len(durations),
                        "p50_ms": median(durations),
                        "p99_ms": percentile(durations, 99),
                    }
                    print(f"  reads {row}", flush=True)
                    rows.append(row)
        finally:
            api.stop()
    return rows


def _running(api: Api) -> int:
    response = api.http.get("/workflows?status=PENDING&limit=100")
    return len(response.json()["workflows"]) if response.status_code == 200 else 0

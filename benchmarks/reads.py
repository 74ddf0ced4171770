"""Reads under write load: the first page and an uncached scrape while workers drain a queue.

A database with 50,000 finished and 50,000 queued workflows, once with analyzed tables and once
as a fresh deployment has them after a burst (never analyzed: autovacuum is off on them for the
run, standing in for the minute before it first comes by). The API is timed idle, then while
two workers of concurrency 50 drain the queue, at the API's CPU priority and below it.
"""

import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.measure import OURS, Databases, register_queue, workers, wrk
from tests.support.history import insert_workflows
from tests.support.polling import wait_for
from tests.support.processes import Api

TABLES = ("workflow_status", "workflow_input", "workflow_events")
PATHS = {
    "first page": "/workflows?limit=50",
    "uncached /metrics": "/metrics",
    # The floor under the same load: a request that reads nothing, in the same process.
    "/healthz": "/healthz",
}
# The load on the API's machine, and the workers' CPU priority (None: no workers). On one
# 2-core machine the workers take every cycle the API does not; niced, they leave the API its
# share, as the CPU requests of pods on one Kubernetes node do.
LOADS = {"idle": None, "2 workers draining": 0, "2 workers draining, niced": 10}


def _prepare(url: str, analyzed: bool, finished: int, queued: int) -> None:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    if not analyzed:
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(sa.text(f"ALTER TABLE dbos.{table} SET (autovacuum_enabled = off)"))
    engine.dispose()
    insert_workflows(url, finished, queued, analyze=analyzed)
    register_queue(url, 50, 0.1)


def _time(api: Api, path: str, seconds: float) -> dict[str, float]:
    """Back-to-back requests over one connection for `seconds`, timed by wrk (a Python client
    added about 5 ms of its own to each request here); any failed request fails the run."""
    return wrk(f"{api.url}{path}", 1, max(1, round(seconds)))


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
            for load, nice in LOADS.items():
                if nice is None:
                    figures = {name: _time(api, path, seconds / 2) for name, path in PATHS.items()}
                else:
                    with workers(OURS, url, 2, 50, 0.1, nice=nice):
                        wait_for(
                            lambda api=api: _running(api) >= 50,  # type: ignore[misc]
                            timeout=60,
                            what="workers running workflows",
                        )
                        figures = {
                            name: _time(api, path, seconds / 2) for name, path in PATHS.items()
                        }
                for name, timed in figures.items():
                    row = {
                        "tables": "analyzed" if analyzed else "never analyzed",
                        "load": load,
                        "request": name,
                        "requests": int(timed["requests"]),
                        "p50_ms": timed["p50_ms"],
                        "p99_ms": timed["p99_ms"],
                    }
                    print(f"  reads {row}", flush=True)
                    rows.append(row)
        finally:
            api.stop()
    return rows


def _running(api: Api) -> int:
    response = api.http.get("/workflows?status=PENDING&limit=100")
    return len(response.json()["workflows"]) if response.status_code == 200 else 0

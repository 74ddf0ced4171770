"""Queue metrics and listing at scale, against the seed's approach, in one run.

Seeds PostgreSQL with --finished finished and --enqueued queued workflows (plain SQL shaped as
DBOS writes them), starts the real API, and times over HTTP: /metrics uncached and cached, and
the first page of GET /workflows. Beside them, in the same run: the bare aggregate query, the
seed's listing (list every workflow, then one get_event each) at sizes where it finishes, and
DBOSClient.list_queued_workflows, which a naive metric would call.

    .venv/bin/python -m benchmarks.scale [--finished 1000000] [--enqueued 100000]

The server is TEST_DATABASE_URL's, else postgresql://postgres@127.0.0.1:5432. Prints a Markdown
report; the databases it creates are dropped at the end.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from dbos import DBOSClient

from services.contract import PROGRESS_EVENT_KEY, QUEUE_NAME, WORKFLOW_NAME
from tests.support.databases import LOCAL_SERVER_URL, PostgresServer, migrate
from tests.support.history import insert_workflows
from tests.support.processes import Api


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm up: connections, plans, page cache
    durations = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def summary(durations: list[float]) -> str:
    ordered = sorted(durations)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered):.2f} | {p95:.2f} | {len(ordered)}"


# The queue-depth aggregate /metrics runs, as a bare statement, and the one-statement form a
# first attempt would write (it matches no partial index and reads the whole table).
DEPTH_SQL = (
    "SELECT queue_name, status, count(*) FROM dbos.workflow_status WHERE status IN "
    "('ENQUEUED','PENDING') AND queue_name IS NOT NULL GROUP BY 1, 2 UNION ALL "
    "SELECT queue_name, status, count(*) FROM dbos.workflow_status WHERE status = 'DELAYED' "
    "AND queue_name IS NOT NULL GROUP BY 1, 2"
)
NAIVE_DEPTH_SQL = (
    "SELECT queue_name, status, count(*) FROM dbos.workflow_status "
    "WHERE status IN ('ENQUEUED','PENDING','DELAYED') GROUP BY 1, 2"
)


def bare_query(url: str, sql: str, runs: int) -> list[float]:
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        durations = timed(lambda: conn.execute(sa.text(sql)).all(), runs)
    engine.dispose()
    return durations


def first_pages(api: Api, runs: int) -> list[float]:
    try:
        api.wait_ready()
        return timed(lambda: api.http.get("/workflows").raise_for_status(), runs)
    finally:
        api.stop()


def seed_listing(url: str) -> float:
    """The seed's GET /workflows: list every workflow, then one get_event per workflow."""
    client = DBOSClient(system_database_url=url)
    try:
        started = time.perf_counter()
        for status in client.list_workflows(name=WORKFLOW_NAME, sort_desc=True):
            client.get_event(status.workflow_id, PROGRESS_EVENT_KEY, timeout_seconds=0)
        return (time.perf_counter() - started) * 1000
    finally:
        client.destroy()


def naive_queue_depth(url: str) -> float:
    client = DBOSClient(system_database_url=url)
    try:
        started = time.perf_counter()
        len(client.list_queued_workflows(queue_name=QUEUE_NAME))
        return (time.perf_counter() - started) * 1000
    finally:
        client.destroy()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--enqueued", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed-sizes", default="1000,10000", help="finished workflows")
    args = parser.parse_args()
    server = PostgresServer(os.environ.get("TEST_DATABASE_URL", LOCAL_SERVER_URL))
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    rows: list[str] = []
    try:
        url = server.create_database()
        migrate(url)
        started = time.perf_counter()
        insert_workflows(url, args.finished, args.enqueued)
        print(
            f"seeded {args.finished:,} finished + {args.enqueued:,} enqueued workflows in "
            f"{time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
        client = DBOSClient(system_database_url=url)
        client.register_queue(QUEUE_NAME, worker_concurrency=10)
        client.destroy()

        uncached = Api(url, workdir, API_METRICS_CACHE_SECONDS="0")
        cached = Api(url, workdir, API_METRICS_CACHE_SECONDS="60")
        try:
            uncached.wait_ready()
            cached.wait_ready()
            bare = bare_query(url, DEPTH_SQL, args.runs)
            rows.append(f"| depth aggregate alone (in process, no HTTP) | {summary(bare)} |")
            naive_sql = bare_query(url, NAIVE_DEPTH_SQL, 10)
            rows.append(f"| one-statement `status IN (3)` aggregate | {summary(naive_sql)} |")
            scrape = timed(lambda: uncached.http.get("/metrics").raise_for_status(), args.runs)
            rows.append(f"| `GET /metrics`, uncached | {summary(scrape)} |")
            hit = timed(lambda: cached.http.get("/metrics").raise_for_status(), args.runs)
            rows.append(f"| `GET /metrics`, cached | {summary(hit)} |")
            page = timed(lambda: uncached.http.get("/workflows").raise_for_status(), args.runs)
            rows.append(f"| `GET /workflows` first page (50) | {summary(page)} |")
            enq = timed(
                lambda: uncached.http.get("/workflows?status=ENQUEUED").raise_for_status(),
                args.runs,
            )
            rows.append(f"| `GET /workflows?status=ENQUEUED` first page | {summary(enq)} |")
            fleet = timed(lambda: uncached.http.get("/executors").raise_for_status(), args.runs)
            rows.append(
                f"| `GET /executors` (includes the stranded-work read) | {summary(fleet)} |"
            )
            health = timed(lambda: uncached.http.get("/healthz").raise_for_status(), args.runs)
            rows.append(f"| `GET /healthz` (HTTP floor, no database) | {summary(health)} |")
            naive = naive_queue_depth(url)
            rows.append(f"| seed-style depth: `len(list_queued_workflows())` | {naive:.0f} | | 1 |")
            target = 1.5 * statistics.median(bare) + 5
            verdicts = [
                f"- uncached scrape {statistics.median(scrape):.2f} ms vs target "
                f"{target:.2f} ms (1.5 x aggregate + 5 ms): "
                f"{'met' if statistics.median(scrape) <= target else 'MISSED'}",
                f"- cached scrape {statistics.median(hit):.2f} ms vs 5 ms: "
                f"{'met' if statistics.median(hit) < 5 else 'MISSED'}",
                f"- first page {statistics.median(page):.2f} ms vs 10 ms: "
                f"{'met' if statistics.median(page) < 10 else 'MISSED'}",
            ]
        finally:
            uncached.stop()
            cached.stop()

        for size in [int(s) for s in args.seed_sizes.split(",") if s]:
            small = server.create_database()
            migrate(small)
            insert_workflows(small, size, 0)
            ours = first_pages(Api(small, workdir), 20)
            theirs = seed_listing(small)
            rows.append(f"| {size:,} finished: `GET /workflows` first page | {summary(ours)} |")
            rows.append(
                f"| {size:,} finished: seed's listing (all + get_event each) | {theirs:.0f} | | 1 |"
            )
    finally:
        server.close()
    print(
        f"### {args.finished:,} finished + {args.enqueued:,} enqueued workflows "
        f"(run {uuid.uuid4().hex[:6]}, {time.strftime('%Y-%m-%d')})\n"
    )
    print("| what | median ms | p95 ms | runs |\n|---|---|---|---|")
    print("\n".join(rows))
    print()
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Execution side by side: the project's worker against a bare DBOS worker, same run.

Each trial has a fresh database (a copy of a migrated template) and its own worker processes;
the two implementations alternate, and the figures are medians over the repetitions.

- throughput: `n` workflows of 2 steps of 0 s, all enqueued before the worker starts; workflows/s
  from DBOS's own timestamps (first start to last finish), and commits and rollbacks per
  workflow from pg_stat_database over the worker's whole life (start-up and drain included,
  the benchmark's own status polls subtracted);
- idle: transactions per second of a worker with nothing to do, and its connections;
- latency: enqueue-to-start (DBOS's `started_at_epoch_ms - created_at`) of workflows enqueued
  one at a time at light load.
"""

import random
import time
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient

from benchmarks.measure import (
    BARE,
    OURS,
    Databases,
    enqueue_many,
    enqueue_options,
    median,
    percentile,
    register_queue,
    workers,
)
from tests.support.polling import wait_for


@dataclass
class Throughput:
    implementation: str
    workers: int
    concurrency: int
    polling_seconds: float
    workflows: int
    wf_per_s: float
    commits_per_wf: float
    rollbacks_per_wf: float
    # Workflows run by the busiest and the idlest worker (claim fairness across workers).
    share_max: int
    share_min: int

    @property
    def tx_per_wf(self) -> float:
        return self.commits_per_wf + self.rollbacks_per_wf


class Polls:
    """Status reads on the measured database, counted so they can be taken off its totals."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(
            sa.make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
        )
        # The first connection's dialect set-up runs statements of its own: before the count.
        self.engine.connect().close()
        self.count = 0

    def scalar(self, sql: str) -> Any:
        with self.engine.connect() as conn:
            self.count += 1
            return conn.execute(sa.text(sql)).scalar()

    def rows(self, sql: str) -> list[sa.Row[Any]]:
        with self.engine.connect() as conn:
            self.count += 1
            return list(conn.execute(sa.text(sql)))

    def close(self) -> None:
        self.engine.dispose()


def throughput(
    dbs: Databases,
    module: str,
    *,
    concurrency: int,
    polling_seconds: float,
    workflows: int,
    worker_count: int = 1,
) -> Throughput:
    url = dbs.fresh()
    register_queue(url, concurrency, polling_seconds)
    enqueue_many(url, workflows, num_steps=2, step_seconds=0.0)
    polls = Polls(url)
    before = dbs.settled_transactions(url)
    try:
        with workers(module, url, worker_count, concurrency, polling_seconds):
            wait_for(
                lambda: (
                    polls.scalar(
                        "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
                    )
                    == workflows
                ),
                timeout=600,
                what=f"{workflows} workflows to succeed",
            )
        span_ms = polls.scalar(
            "SELECT max(updated_at) - min(started_at_epoch_ms) FROM dbos.workflow_status"
        )
        shares = [
            int(row[0])
            for row in polls.rows("SELECT count(*) FROM dbos.workflow_status GROUP BY executor_id")
        ]
    finally:
        polls.close()
    after = dbs.settled_transactions(url)
    commits = after[0] - before[0] - polls.count
    rollbacks = after[1] - before[1]
    return Throughput(
        implementation="ours" if module == OURS else "bare DBOS",
        workers=worker_count,
        concurrency=concurrency,
        polling_seconds=polling_seconds,
        workflows=workflows,
        wf_per_s=workflows / max(span_ms / 1000, 1e-3),
        commits_per_wf=commits / workflows,
        rollbacks_per_wf=rollbacks / workflows,
        share_max=max(shares),
        share_min=min(shares) if len(shares) == worker_count else 0,
    )


def idle(
    dbs: Databases, module: str, *, polling_seconds: float, seconds: float
) -> dict[str, float]:
    """Transactions per second of one worker with an empty queue, after a warm-up."""
    url = dbs.fresh()
    register_queue(url, 10, polling_seconds)
    with workers(module, url, 1, 10, polling_seconds):
        time.sleep(3)  # past start-up: the first heartbeats, the first polls
        before, started = dbs.transactions(url), time.monotonic()
        time.sleep(seconds)
        after, elapsed = dbs.transactions(url), time.monotonic() - started
        connections = dbs.connections(url)
    return {
        "tx_per_s": (sum(after) - sum(before)) / elapsed,
        "connections": connections,
    }


def latency(
    dbs: Databases, module: str, *, polling_seconds: float, count: int, gap_seconds: float
) -> list[float]:
    """Enqueue-to-start of `count` workflows enqueued one at a time, `gap_seconds` apart on
    average (jittered, so that enqueues do not fall in step with the polls), in ms."""
    url = dbs.fresh()
    rng = random.Random(7)
    register_queue(url, 10, polling_seconds)
    with workers(module, url, 1, 10, polling_seconds):
        client = DBOSClient(system_database_url=url)
        try:
            # The queue's thread starts within a second of the queue's registration: one
            # workflow run first keeps that start-up out of the figures.
            client.enqueue({**enqueue_options(), "workflow_id": "warm-up"}, 1, 0.0)
            client.retrieve_workflow("warm-up").get_result()
            options = enqueue_options()
            for _ in range(count):
                client.enqueue(options, 1, 0.0)
                time.sleep(rng.uniform(0.5, 1.5) * gap_seconds)
        finally:
            client.destroy()
        polls = Polls(url)
        try:
            wait_for(
                lambda: (
                    polls.scalar(
                        "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
                    )
                    == count + 1
                ),
                timeout=120,
                what=f"{count} workflows to succeed",
            )
            waits = polls.rows(
                "SELECT started_at_epoch_ms - created_at FROM dbos.workflow_status "
                "WHERE workflow_uuid <> 'warm-up'"
            )
        finally:
            polls.close()
    return [float(row[0]) for row in waits]


def workflows_for(concurrency: int, polling_seconds: float, seconds: float = 6.0) -> int:
    """About `seconds` of work at the rate a worker can claim (concurrency per poll), capped
    at what two cores run in that time."""
    return max(60, min(600, int(seconds * min(concurrency / polling_seconds, 100))))


def run(dbs: Databases, reps: int, quick: bool = False) -> dict[str, Any]:
    grid = [(10, 1.0), (50, 1.0), (10, 0.1), (50, 0.1)]
    if quick:
        grid = [(50, 0.1)]
    results: dict[str, Any] = {"throughput": [], "workers": [], "idle": [], "latency": []}
    for concurrency, polling in grid:
        n = workflows_for(concurrency, polling)
        for rep in range(reps):
            for module in (OURS, BARE) if rep % 2 == 0 else (BARE, OURS):
                trial = throughput(
                    dbs, module, concurrency=concurrency, polling_seconds=polling, workflows=n
                )
                print(f"  throughput {trial}", flush=True)
                results["throughput"].append({**asdict(trial), "tx_per_wf": trial.tx_per_wf})
    for count in (1, 2) if quick else (1, 2, 4):
        for _ in range(reps):
            trial = throughput(
                dbs,
                OURS,
                concurrency=50,
                polling_seconds=0.1,
                workflows=600,
                worker_count=count,
            )
            print(f"  workers {trial}", flush=True)
            results["workers"].append({**asdict(trial), "tx_per_wf": trial.tx_per_wf})
    for rep in range(reps):
        for module in (OURS, BARE) if rep % 2 == 0 else (BARE, OURS):
            figures = idle(dbs, module, polling_seconds=1.0, seconds=10 if quick else 20)
            print(f"  idle {module} {figures}", flush=True)
            results["idle"].append({"implementation": _name(module), **figures})
    for polling in (1.0, 0.1):
        for rep in range(max(1, reps // 2)):
            for module in (OURS, BARE) if rep % 2 == 0 else (BARE, OURS):
                waits = latency(
                    dbs,
                    module,
                    polling_seconds=polling,
                    count=40 if quick else 100,
                    gap_seconds=max(0.1, polling / 5),
                )
                print(
                    f"  latency {module} poll {polling}: p50 {percentile(waits, 50):.0f} ms "
                    f"p99 {percentile(waits, 99):.0f} ms",
                    flush=True,
                )
                results["latency"].append(
                    {"implementation": _name(module), "polling_seconds": polling, "ms": waits}
                )
    return results


def _name(module: str) -> str:
    return "ours" if module == OURS else "bare DBOS"


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per configuration and implementation."""

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return median([float(r[key]) for r in rows])

    out: dict[str, Any] = {"throughput": [], "workers": [], "idle": {}, "latency": []}
    configs = sorted({(r["concurrency"], r["polling_seconds"]) for r in results["throughput"]})
    for concurrency, polling in configs:
        row: dict[str, Any] = {"concurrency": concurrency, "polling_seconds": polling}
        for name in ("ours", "bare DBOS"):
            rows = [
                r
                for r in results["throughput"]
                if (r["concurrency"], r["polling_seconds"], r["implementation"])
                == (concurrency, polling, name)
            ]
            row[name] = {
                key: med(rows, key)
                for key in ("wf_per_s", "commits_per_wf", "rollbacks_per_wf", "tx_per_wf")
            }
        out["throughput"].append(row)
    for count in sorted({r["workers"] for r in results["workers"]}):
        rows = [r for r in results["workers"] if r["workers"] == count]
        out["workers"].append(
            {
                "workers": count,
                **{k: med(rows, k) for k in ("wf_per_s", "tx_per_wf", "rollbacks_per_wf")},
                "share_min": min(r["share_min"] for r in rows),
                "share_max": max(r["share_max"] for r in rows),
            }
        )
    for name in ("ours", "bare DBOS"):
        rows = [r for r in results["idle"] if r["implementation"] == name]
        out["idle"][name] = {k: med(rows, k) for k in ("tx_per_s", "connections")}
    for polling in sorted({r["polling_seconds"] for r in results["latency"]}, reverse=True):
        row = {"polling_seconds": polling}
        for name in ("ours", "bare DBOS"):
            waits = [
                w
                for r in results["latency"]
                if (r["implementation"], r["polling_seconds"]) == (name, polling)
                for w in r["ms"]
            ]
            row[name] = {"p50_ms": percentile(waits, 50), "p99_ms": percentile(waits, 99)}
        out["latency"].append(row)
    return out

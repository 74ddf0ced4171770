"""The side-by-side benchmarks' machinery, run small: both references work, and every measurement
reads real figures off real processes, so `make bench` cannot rot between recorded runs."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import enqueue, execution, reads
from benchmarks.measure import BARE, OURS, Databases, enqueue_in_transactions, wrk
from tests.support.databases import PostgresServer, count_workflows

pytestmark = [pytest.mark.postgres]

# The demo workflow the throughput runs use: 2 steps, a progress event before and after each.
STEPS, EVENTS, COMPLETION = 2, 3, 1


@pytest.fixture(scope="module")
def dbs(postgres: PostgresServer | None) -> Iterator[Databases]:
    assert postgres is not None, "the benchmarks need PostgreSQL"
    databases = Databases(postgres)
    try:
        yield databases
    finally:
        databases.close()


@pytest.mark.parametrize("module", [OURS, BARE], ids=["ours", "bare"])
def test_throughput_counts_every_workflow_and_its_transactions(dbs: Databases, module: str) -> None:
    trial = execution.throughput(dbs, module, concurrency=10, polling_seconds=0.1, workflows=40)
    assert trial.workflows == 40 and trial.share_max == trial.share_min == 40
    assert trial.wf_per_s > 0
    # At least one commit per step checkpoint, per event and for the outcome: a count read off
    # another database, or before the workers' backends reported, would fall below it.
    assert trial.commits_per_wf >= STEPS + EVENTS + COMPLETION, trial


def test_several_workers_share_the_queue(dbs: Databases) -> None:
    trial = execution.throughput(
        dbs, OURS, concurrency=10, polling_seconds=0.1, workflows=60, worker_count=2
    )
    assert trial.share_min > 0 and trial.share_min + trial.share_max == 60, trial


def test_idle_cost_and_latency_are_read_off_running_workers(dbs: Databases) -> None:
    figures = execution.idle(dbs, BARE, polling_seconds=0.2, seconds=2)
    assert figures["tx_per_s"] > 0 and figures["connections"] >= 1
    waits = execution.latency(dbs, OURS, polling_seconds=0.1, count=5, gap_seconds=0.05)
    assert len(waits) == 5 and all(0 <= w < 10_000 for w in waits), waits


@pytest.mark.requires_tool("wrk")
@pytest.mark.parametrize("kind", ["ours", "seed"])
def test_http_enqueue_load_enqueues_what_wrk_reports(dbs: Databases, kind: str) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-test-"))
    script = workdir / "post.lua"
    script.write_text(enqueue.wrk_script(enqueue.BODY))
    url = dbs.fresh()
    server = enqueue.Server(kind, url, 1, workdir)
    try:
        server.wait_serving()
        figures = wrk(f"{server.url}/workflows", 4, 1, script)
    finally:
        server.stop()
    assert figures["rps"] > 0 and 0 < figures["p50_ms"] <= figures["p99_ms"]
    # Every request wrk counted enqueued a workflow (plus the one that checked the server).
    assert count_workflows(url) >= figures["requests"] + 1


@pytest.mark.requires_tool("wrk")
def test_batch_load_enqueues_a_thousand_per_request_beside_dbos_own_batch(dbs: Databases) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-test-"))
    script = workdir / "batch.lua"
    script.write_text(enqueue.wrk_script(enqueue.BATCH_BODY))
    trials = enqueue.batch_trials(dbs, 1, 1, script, workdir)
    assert [t["connections"] for t in trials] == [1, 4]
    assert all(t["wf_per_s"] == t["rps"] * enqueue.BATCH_SIZE > 0 for t in trials)
    url = dbs.fresh()
    assert enqueue_in_transactions(url, 2, 50) > 0
    assert count_workflows(url) == 100


@pytest.mark.requires_tool("wrk")
def test_reads_under_load_time_both_states_of_the_tables(dbs: Databases) -> None:
    rows = reads.run(dbs, seconds=1, finished=500, queued=500)
    seen = {(r["tables"], r["load"], r["request"]) for r in rows}
    assert len(seen) == 18 and all(r["requests"] > 0 for r in rows)

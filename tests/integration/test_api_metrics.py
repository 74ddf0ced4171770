"""The API's /metrics on small data: counts, ages, load, absence, caching, HTTP, processes."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from dbos import DBOSClient

from services.contract import QUEUE_NAME
from tests.conftest import BACKENDS, NewDatabase
from tests.support.metrics import names, sample
from tests.support.polling import wait_for
from tests.support.processes import Api
from tests.support.tools import require_tool

Q = {"queue": QUEUE_NAME}
CONCURRENCY = 4


def _register_queue(url: str) -> None:
    # What a worker does at start; there is no worker here, so everything stays ENQUEUED.
    client = DBOSClient(system_database_url=url)
    try:
        client.register_queue(QUEUE_NAME, worker_concurrency=CONCURRENCY)
    finally:
        client.destroy()


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, new_migrated_database: NewDatabase) -> str:
    url = new_migrated_database(request.param)
    _register_queue(url)
    return url


@pytest.fixture
def api(url: str, tmp_path: Path) -> Iterator[Api]:
    api = Api(url, tmp_path)
    api.wait_ready()
    yield api
    api.stop()


def _scrape(api: Api) -> str:
    response = api.http.get("/metrics")
    assert response.status_code == 200
    return response.text


def test_an_empty_queue_reports_zero_load_and_no_age(api: Api) -> None:
    text = _scrape(api)
    for status in ("enqueued", "pending", "delayed"):
        assert sample(text, "queue_worker_queue_workflows", status=status, **Q) == 0
    assert sample(text, "queue_worker_queue_load", **Q) == 0
    # The API's own version reads 0 too: its fleet's autoscaler must see 0 to shrink.
    assert sample(text, "queue_worker_queue_load", application_version="1", **Q) == 0
    assert sample(text, "queue_worker_queue_worker_concurrency", **Q) == CONCURRENCY
    assert sample(text, "queue_worker_orphaned_workflows", **Q) == 0
    assert "queue_worker_queue_oldest_enqueued_age_seconds" not in names(text)


def test_counts_load_and_age_follow_the_queue(api: Api) -> None:
    started = time.monotonic()
    ids = [api.enqueue() for _ in range(6)]
    api.http.post(f"/workflows/{ids[-1]}/cancel")  # cancelled: no longer queued

    text = _scrape(api)
    assert sample(text, "queue_worker_queue_workflows", status="enqueued", **Q) == 5
    assert sample(text, "queue_worker_queue_load", **Q) == 5 / CONCURRENCY

    def aged() -> float | None:
        age = sample(_scrape(api), "queue_worker_queue_oldest_enqueued_age_seconds", **Q)
        return age if age is not None and age >= 1.0 else None

    age = wait_for(aged, timeout=10, what="oldest age to pass one second")
    # SQLite records enqueue times in whole seconds: allow one second either way.
    assert age <= time.monotonic() - started + 1.0


def test_a_delayed_workflow_is_not_waiting_yet(url: str, api: Api) -> None:
    client = DBOSClient(system_database_url=url)
    try:
        client.enqueue(
            {"queue_name": QUEUE_NAME, "workflow_name": "workflow", "delay_seconds": 3600}, 1, 0.0
        )
    finally:
        client.destroy()
    text = _scrape(api)
    assert sample(text, "queue_worker_queue_workflows", status="delayed", **Q) == 1
    assert sample(text, "queue_worker_queue_load", **Q) == 0
    assert "queue_worker_queue_oldest_enqueued_age_seconds" not in names(text)


def test_scrapes_within_the_cache_period_share_one_read(url: str, tmp_path: Path) -> None:
    api = Api(url, tmp_path, API_METRICS_CACHE_SECONDS="60")
    try:
        api.wait_ready()
        first = _scrape(api)
        api.enqueue()
        assert sample(_scrape(api), "queue_worker_queue_workflows", status="enqueued", **Q) == (
            sample(first, "queue_worker_queue_workflows", status="enqueued", **Q)
        )
    finally:
        api.stop()


def test_http_metrics_use_route_templates(api: Api) -> None:
    for n in range(3):
        api.http.get(f"/workflows/no-such-id-{n}")
    api.http.get("/not/a/route")
    text = _scrape(api)
    template = {"route": "/workflows/{workflow_id}", "method": "GET", "status": "404"}
    assert sample(text, "queue_worker_http_requests_total", **template) == 3
    assert sample(text, "queue_worker_http_request_duration_seconds_count", **template) == 3
    unmatched = {"route": "<unmatched>", "method": "GET", "status": "404"}
    assert sample(text, "queue_worker_http_requests_total", **unmatched) == 1
    assert not any("no-such-id" in line for line in text.splitlines())


def test_several_uvicorn_processes_report_one_set_of_numbers(url: str, tmp_path: Path) -> None:
    api = Api(url, tmp_path, API_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    try:
        api.wait_ready()
        api.enqueue()
        for _ in range(20):  # a new connection each time, so both processes serve some
            httpx.get(f"{api.url}/openapi.json", headers={"Connection": "close"})
        openapi = {"route": "/openapi.json", "method": "GET", "status": "200"}
        for _ in range(5):  # whichever process answers the scrape, the same totals
            text = httpx.get(f"{api.url}/metrics", headers={"Connection": "close"}).text
            assert sample(text, "queue_worker_http_requests_total", **openapi) == 20
            assert sample(text, "queue_worker_queue_workflows", status="enqueued", **Q) == 1
        assert api.service.log().count("api.started") == 2
    finally:
        api.stop()


@pytest.mark.requires_tool("promtool")
def test_metrics_pass_promtool(api: Api) -> None:
    promtool = require_tool("promtool")
    api.enqueue()
    api.http.get("/workflows")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=_scrape(api), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_load_counts_only_what_the_queues_limits_let_run(url: str, api: Api) -> None:
    client = DBOSClient(system_database_url=url)
    try:
        # As the registry declares it (4 per partition, 10 per worker), and a queue of 3 at once.
        client.register_queue(
            "fanout-items", worker_concurrency=10, partition_concurrency=4, polling_interval_sec=1
        )
        client.register_queue("capped", worker_concurrency=2, global_concurrency=3)
        for _ in range(5):
            client.enqueue({"queue_name": "capped", "workflow_name": "w"})
    finally:
        client.destroy()
    items = [
        {"workflow": "fanout_item", "input": {"index": i}, "partition_key": key}
        for key, count in (("big", 20), ("small", 2))
        for i in range(count)
    ]
    assert api.http.post("/workflows:batch", json={"workflows": items}).status_code == 202

    text = _scrape(api)

    queue = {"queue": "fanout-items"}
    assert sample(text, "queue_worker_queue_workflows", status="enqueued", **queue) == 22
    # 4 of the big partition and both of the small one could run: 6 / 10, not 22 / 10.
    assert sample(text, "queue_worker_queue_load", **queue) == 0.6
    assert sample(text, "queue_worker_queue_load", queue="capped") == 3 / 2


def test_the_load_is_reported_per_application_version_beside_the_total(url: str, api: Api) -> None:
    """Each version's workers are a fleet of their own (DBOS runs work only on workers of its
    version): each is scaled on its own share, and the total stays for dashboards. A queue's
    global and per-partition limits hold over every version's running work together."""
    client = DBOSClient(system_database_url=url)
    try:
        client.register_queue("fanout-items", worker_concurrency=10, partition_concurrency=4)
        client.register_queue("capped", worker_concurrency=2, global_concurrency=4)
        for version, count in (("1", 3), ("2", 5), (None, 2)):
            for _ in range(count):
                options = {"queue_name": QUEUE_NAME, "workflow_name": "w"}
                if version is not None:
                    options["app_version"] = version
                client.enqueue(options)  # type: ignore[arg-type]
        # One partition, six items of each version: 4 can run at once, of either version.
        for version in ("1", "2"):
            for queue, extra in (("fanout-items", {"queue_partition_key": "big"}), ("capped", {})):
                for _ in range(6):
                    client.enqueue(
                        {
                            "queue_name": queue,
                            "workflow_name": "fanout_item",
                            "app_version": version,
                            **extra,  # type: ignore[typeddict-item]
                        }
                    )
        client.enqueue(
            {
                "queue_name": QUEUE_NAME,
                "workflow_name": "w",
                "app_version": "2",
                "delay_seconds": 600,
            }
        )
    finally:
        client.destroy()

    text = _scrape(api)

    def load(queue: str, **version: str) -> float | None:
        return sample(text, "queue_worker_queue_load", queue=queue, **version)

    # Work enqueued without a version goes to DBOS's latest: counted under the API's version.
    assert load(QUEUE_NAME, application_version="1") == 5 / CONCURRENCY
    assert load(QUEUE_NAME, application_version="2") == 5 / CONCURRENCY
    assert load(QUEUE_NAME) == 10 / CONCURRENCY
    # Nothing runs yet: either version's workers could take all 4 places, but together no more
    # than 4 run (4 / 10 and 4 / 2 workers, not twice that).
    for version in ("1", "2"):
        assert load("fanout-items", application_version=version) == 0.4
        assert load("capped", application_version=version) == 2
    assert load("fanout-items") == 0.4
    assert load("capped") == 2
    work = {
        (version, status): sample(
            text, "queue_worker_version_workflows", application_version=version, status=status
        )
        for version in ("1", "2")
        for status in ("enqueued", "pending", "delayed")
    }
    assert work == {
        ("1", "enqueued"): 17,
        ("1", "pending"): 0,
        ("1", "delayed"): 0,
        ("2", "enqueued"): 17,
        ("2", "pending"): 0,
        ("2", "delayed"): 1,
    }
    # No worker runs either version: all of version 2's queued work is stranded, and version 1's
    # apart from what was enqueued without a version (DBOS hands that to whichever is latest).
    stranded = {
        version: sample(
            text, "queue_worker_queue_stranded_workflows", application_version=version, **Q
        )
        for version in ("1", "2")
    }
    assert stranded == {"1": 3, "2": 5}


def test_work_without_a_version_counts_under_dbos_latest_version(url: str, api: Api) -> None:
    # Versions 1 then 2 registered (as workers do at launch), and the API still at 1, as after
    # a rollback before set-latest-version: DBOS gives unversioned work to version 2's workers.
    engine = sa.create_engine(url)
    table = (
        "dbos.application_versions"
        if engine.dialect.name == "postgresql"
        else ("application_versions")
    )
    with engine.begin() as conn:
        for version, stamp in (("1", 1_000), ("2", 2_000)):
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (version_id, version_name, version_timestamp, "
                    "created_at) VALUES (:id, :name, :stamp, :stamp)"
                ),
                {"id": f"v{version}", "name": version, "stamp": stamp},
            )
    engine.dispose()
    client = DBOSClient(system_database_url=url)
    try:
        for _ in range(4):
            client.enqueue({"queue_name": QUEUE_NAME, "workflow_name": "w"})
    finally:
        client.destroy()

    text = _scrape(api)

    assert sample(text, "queue_worker_queue_load", application_version="2", **Q) == 1
    assert sample(text, "queue_worker_queue_load", application_version="1", **Q) == 0
    # No worker of version 2 runs: that work is stranded, and said so.
    stranded = sample(text, "queue_worker_queue_stranded_workflows", application_version="2", **Q)
    assert stranded == 4

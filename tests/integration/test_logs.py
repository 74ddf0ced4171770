"""One log stream per service, in the format asked for: every line of the worker's and the
API's output parses, DBOS's and uvicorn's included; a request's id goes from the API's access
line into the worker's lines for the workflow it enqueued; DBOS's start-up chatter is gone."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contract.logs import DBOS_CHATTER
from tests.conftest import NewDatabase
from tests.support.databases import refuse_audit_rows
from tests.support.processes import Api, free_port, start_worker, wait_worker_ready

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LEVELS = ("debug", "info", "warning", "error", "critical")
# text: time, level, then an event and its key=value fields, or a library's "logger: message".
TEXT_LINE = re.compile(
    rf"(?P<time>{TIME}) (?P<level>DEBUG|INFO |WARNING|ERROR|CRITICAL) "
    r"(?:(?P<logger>[\w.]+): (?P<message>.*)"
    r"|(?P<event>[a-z_]+(?:\.[a-z_]+)+)(?P<fields>(?: [\w]+=(?:\"(?:[^\"\\]|\\.)*\"|\S+))*))$"
)
TEXT_FIELD = re.compile(r" (\w+)=(\"(?:[^\"\\]|\\.)*\"|\S+)")


def parse(output: str, log_format: str) -> list[dict[str, Any]]:
    """Every record of a service's output; fails on a line that is not one (or, in text, a
    traceback's indented continuation of one)."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(output.splitlines(), start=1):
        if log_format == "json":
            record = json.loads(line)
            assert isinstance(record, dict), line
            assert re.fullmatch(TIME, record["time"]), line
            assert record["level"] in LEVELS and record["logger"], line
            assert ("event" in record) != ("message" in record), line
            records.append(record)
            continue
        if line.startswith("  ") and records:
            records[-1].setdefault("exception", []).append(line)
            continue
        match = TEXT_LINE.fullmatch(line)
        assert match is not None, f"line {number} is not a record: {line!r}"
        record = {"level": match["level"].strip().lower()}
        if match["event"]:
            record["event"] = match["event"]
            for key, value in TEXT_FIELD.findall(match["fields"]):
                record[key] = json.loads(value) if value.startswith('"') else value
        else:
            record["logger"], record["message"] = match["logger"], match["message"]
        records.append(record)
    assert records, "no output at all"
    return records


def events(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == name]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_both_services_write_one_stream_that_parses(
    log_format: str, new_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_database("postgres")  # empty: the worker migrates it
    worker = start_worker(url, tmp_path, LOG_FORMAT=log_format)
    api = Api(url, tmp_path, LOG_FORMAT=log_format)
    try:
        wait_worker_ready(worker)
        api.wait_ready()
        answer = api.http.post(
            "/workflows", json={"num_steps": 2, "step_seconds": 0}, headers={"X-Request-Id": "r-7"}
        )
        assert answer.status_code == 202, answer.text
        workflow_id = answer.json()["workflow_id"]
        api.wait_status(workflow_id, "SUCCESS")
        assert api.http.get("/workflows/nope").status_code == 404
    finally:
        api.stop()
        worker.stop()
    api_records = parse(api.service.log(), log_format)
    worker_records = parse(worker.log(), log_format)

    # The access log: a line per request, with the route's template and the request's id.
    (enqueued,) = [r for r in events(api_records, "http.request") if r["method"] == "POST"]
    assert (enqueued["route"], str(enqueued["status"]), enqueued["request_id"]) == (
        "/workflows",
        "202",
        "r-7",
    )
    (missing,) = [r for r in events(api_records, "http.request") if str(r["status"]) == "404"]
    assert missing["route"] == "/workflows/{workflow_id}"
    assert not [r for r in api_records if r.get("logger") == "uvicorn.access"]
    # The request's id in the worker's line for the workflow it enqueued.
    (ended,) = events(worker_records, "workflow.ended")
    assert (ended["workflow_id"], ended["request_id"], ended["outcome"]) == (
        workflow_id,
        "r-7",
        "success",
    )
    assert ended["queue"] == "workflow-queue" and ended["workflow"] == "workflow"
    # DBOS's start-up chatter at DEBUG, and one line for the schema instead.
    chatter = [
        r for r in worker_records + api_records if str(r.get("message")).startswith(DBOS_CHATTER)
    ]
    assert chatter == []
    (schema,) = events(worker_records, "schema.ready")
    assert str(schema["fleet_version_before"]) == "0" and int(schema["dbos_version"]) > 0
    assert len(events(worker_records, "worker.ready")) == 1
    if log_format == "json":
        assert {r["service"] for r in worker_records} == {"worker"}
        assert {r["service"] for r in api_records} == {"api"}
        assert {r["executor_id"] for r in worker_records} == {worker.executor_id}


def test_migrate_says_the_schema_version_in_one_line(new_database: NewDatabase) -> None:
    url = new_database("postgres")
    migrate = [sys.executable, "-m", "services.worker", "migrate"]
    env = {"DBOS_SYSTEM_DATABASE_URL": url, "LOG_FORMAT": "json", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    records = parse(done.stdout + done.stderr, "json")
    assert [r.get("event") for r in records if r["level"] == "info"] == ["schema.ready"]
    again = subprocess.run(migrate, env=env, capture_output=True, text=True, timeout=120)
    (schema,) = parse(again.stdout + again.stderr, "json")
    assert schema["fleet_version"] == schema["fleet_version_before"] == records[0]["fleet_version"]


def test_a_bad_log_format_is_refused_with_its_reason(new_database: NewDatabase) -> None:
    for module in ("services.worker", "services.api"):
        env = {"DBOS_SYSTEM_DATABASE_URL": new_database("sqlite"), "LOG_FORMAT": "yaml"}
        done = subprocess.run(
            [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (module, done.stderr)
        assert "LOG_FORMAT" in done.stderr and "'text'" in done.stderr, done.stderr


def test_an_unexpected_error_is_answered_logged_once_and_keeps_the_connection(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # The audit log refusing rows fails an enqueue in a way no handler answers.
    url = new_migrated_database("postgres")
    refuse_audit_rows(url, "audit log refused")
    api = Api(url, tmp_path, LOG_FORMAT="json")
    try:
        api.wait_ready()
        with httpx.Client(base_url=api.url, timeout=30) as client:
            failed = client.post("/workflows", json={}, headers={"X-Request-Id": "boom-1"})
            # The same keep-alive connection answers the next request.
            after = client.get("/workflows?limit=1")
    finally:
        api.stop()
    assert failed.status_code == 500 and after.status_code == 200, (failed.text, after.text)
    assert failed.headers["content-type"] == "application/problem+json"
    assert "audit log refused" not in failed.text and "INSERT" not in failed.text
    assert failed.headers["x-request-id"] == "boom-1"
    assert failed.headers["x-frame-options"] == "DENY"
    assert failed.headers["content-security-policy"].startswith("default-src 'none'")
    records = parse(api.service.log(), "json")
    # Logged once, with its traceback and the request's id (and not by uvicorn again).
    (error,) = [r for r in records if "exception" in r]
    assert error["event"] == "api.unhandled_error" and error["request_id"] == "boom-1"
    assert "audit log refused" in error["exception"]
    assert not [r for r in records if "Exception in ASGI application" in r.get("message", "")]
    (access,) = [r for r in events(records, "http.request") if r["method"] == "POST"]
    assert (access["status"], access["request_id"]) == (500, "boom-1")


def test_a_worker_that_cannot_start_says_why_in_its_format(tmp_path: Path) -> None:
    # The most common failure at start: no database at the address given.
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nothing"
    worker = start_worker(unreachable, tmp_path, LOG_FORMAT="json")
    try:
        assert worker.wait(timeout=60) != 0
    finally:
        worker.stop()
    records = parse(worker.log(), "json")
    (failure,) = [r for r in records if "exception" in r]
    assert failure["level"] == "critical" and "OperationalError" in failure["exception"]


def test_a_worker_refusing_its_configuration_says_why_in_its_format(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    worker = start_worker(
        new_database("sqlite"), tmp_path, LOG_FORMAT="json", WORKER_QUEUES="no-such-queue"
    )
    try:
        assert worker.wait(timeout=60) == 2
    finally:
        worker.stop()
    (refusal,) = [r for r in parse(worker.log(), "json") if r["level"] == "error"]
    assert refusal["event"] == "worker.not_started" and "no-such-queue" in refusal["reason"]

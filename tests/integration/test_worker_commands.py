"""The worker's operator commands: migrate (with an app role) and set-latest-version."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from dbos import DBOSClient

from services.contract import APP_NAME
from tests.conftest import BACKENDS, NewDatabase
from tests.support.processes import REPO_ROOT, start_worker, wait_worker_ready


def _command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.worker", *args],
        env={**os.environ, "DBOS_SYSTEM_DATABASE_URL": url},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _roll_out(url: str, tmp_path: Path, *versions: str) -> None:
    """A worker of each version starts (registering it with DBOS) and stops, in this order."""
    for version in versions:
        worker = start_worker(url, tmp_path, DBOS__APPVERSION=version)
        wait_worker_ready(worker)
        assert worker.stop() == 0


@pytest.mark.postgres
def test_migrate_prepares_both_schemas_for_a_restricted_role(new_database: NewDatabase) -> None:
    url = new_database("postgres")
    role = f"dbosqw_app_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    try:
        result = _command(url, "migrate", "--app-role", role)
        assert result.returncode == 0, result.stderr
        with engine.begin() as conn:
            conn.execute(sa.text(f"SET ROLE {role}"))
            conn.execute(sa.text("SELECT count(*) FROM dbos.workflow_status")).scalar_one()
            conn.execute(
                sa.text(
                    "INSERT INTO queue_worker.worker_heartbeats VALUES ('x', '1', 'h', 0, 0, NULL)"
                )
            )
            conn.execute(sa.text("RESET ROLE"))
            conn.execute(sa.text("DELETE FROM queue_worker.worker_heartbeats"))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_latest_version_after_a_rollback(
    backend: str, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database(backend)
    # A rollout registers "1" then "2"; "2" is then the latest.
    _roll_out(url, tmp_path, "1", "2")
    client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    try:
        assert client.get_latest_application_version()["version_name"] == "2"

        result = _command(url, "set-latest-version", "1")  # rolled back to "1"

        assert result.returncode == 0, result.stderr
        assert client.get_latest_application_version()["version_name"] == "1"
        unknown = _command(url, "set-latest-version", "7")
        assert unknown.returncode == 2
        assert "no worker has run version '7'" in unknown.stderr
        assert client.get_latest_application_version()["version_name"] == "1"
    finally:
        client.destroy()


@pytest.mark.postgres
def test_a_postgres_url_as_providers_write_it_runs_and_a_bad_one_is_named(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database("postgres")
    # "postgres://" is what many hosting providers hand out; SQLAlchemy alone rejects it.
    worker = start_worker(url.replace("postgresql://", "postgres://", 1), tmp_path)
    try:
        wait_worker_ready(worker)
    finally:
        worker.stop()

    result = _command("mysql://app:hunter2-secret@db/dbos", "migrate")
    assert result.returncode == 2
    assert "DBOS_SYSTEM_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_says_which_versions_workers_can_be_removed(
    backend: str, new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    url = new_migrated_database(backend)
    # A rollout registers "1" then "2"; work of "2" is then queued with no worker up.
    _roll_out(url, tmp_path, "1", "2")
    client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    try:
        for _ in range(2):
            client.enqueue(
                {"queue_name": "workflow-queue", "workflow_name": "workflow", "app_version": "2"}
            )
    finally:
        client.destroy()

    result = _command(url, "versions", "--json")

    assert result.returncode == 0, result.stderr
    report = {r["version"]: r for r in json.loads(result.stdout)}
    assert report["1"]["removable"] is True and report["1"]["enqueued"] == 0
    assert report["2"] == {
        "version": "2",
        "latest": True,
        "enqueued": 2,
        "pending": 0,
        "delayed": 0,
        "live_workers": 0,
        "removable": False,
    }
    table = _command(url, "versions")
    assert table.returncode == 0, table.stderr
    assert "no: the latest version" in table.stdout
    assert [line.split()[0] for line in table.stdout.splitlines()[1:]] == ["2", "1"]

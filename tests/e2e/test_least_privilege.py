"""The services run as a role that may not change the schema: the migration, as the schema's
owner, grants it what they need (`migrate --app-role`), and the whole flow works under it:
enqueue, run, audit, retention, while DDL is refused."""

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import NewDatabase
from tests.integration.test_worker_commands import _command
from tests.support.processes import Api, start_worker, wait_worker_ready

pytestmark = pytest.mark.postgres


def test_the_services_need_no_more_than_the_migration_grants(
    new_database: NewDatabase, tmp_path: Path
) -> None:
    owner_url = new_database("postgres")
    role = f"dbosqw_app_{uuid.uuid4().hex[:8]}"
    owner = sa.create_engine(sa.make_url(owner_url).set(drivername="postgresql+psycopg"))
    with owner.begin() as conn:
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN"))
    app_url = sa.make_url(owner_url).set(username=role).render_as_string(hide_password=False)
    worker = api = None
    try:
        migrated = _command(owner_url, "migrate", "--app-role", role)
        assert migrated.returncode == 0, migrated.stderr
        # Both services as the application role; the worker runs no DDL of its own.
        worker = start_worker(
            app_url,
            tmp_path,
            WORKER_RUN_MIGRATIONS="false",
            RETENTION_SECONDS="1",
            RETENTION_INTERVAL_SECONDS="0.5",
        )
        api = Api(app_url, tmp_path)
        wait_worker_ready(worker)
        api.wait_ready()
        workflow_id = api.enqueue(num_steps=2, step_seconds=0)
        api.wait_status(workflow_id, "SUCCESS")
        assert api.http.get("/audit").json()["entries"][0]["target"] == workflow_id
        assert api.http.get("/metrics").status_code == 200
        assert api.http.get("/executors").json()["executors"]

        app = sa.create_engine(sa.make_url(app_url).set(drivername="postgresql+psycopg"))
        try:
            # No DDL, and the audit log only read and added to: a worker running someone's
            # code can neither rewrite nor erase the record, nor change how long it is kept.
            for statement in (
                "CREATE TABLE dbos.intruder (x int)",
                "CREATE TABLE queue_worker.intruder (x int)",
                "UPDATE queue_worker.audit_log SET actor = 'someone else'",
                "DELETE FROM queue_worker.audit_log",
                "TRUNCATE queue_worker.audit_log",
                "UPDATE queue_worker.audit_policy SET min_age_ms = 0",
                # An id of its choosing would block the API's next rows.
                "INSERT INTO queue_worker.audit_log (id, at_ms, actor, roles, action, outcome,"
                " request_id) VALUES (999, 0, 'x', '[]', 'enqueue', 202, 'r')",
            ):
                refused = pytest.raises(sa.exc.ProgrammingError, match="permission denied")
                with refused, app.begin() as conn:
                    conn.execute(sa.text(statement))
            # Its expiry deletes nothing younger than the retention the migration set, and
            # without a policy row nothing younger than the default age.
            with app.begin() as conn:
                expired = conn.execute(sa.text("SELECT queue_worker.expire_audit(0, NULL)"))
                assert expired.scalar_one() == 0
            with owner.begin() as conn:
                conn.execute(sa.text("DELETE FROM queue_worker.audit_policy"))
            with app.begin() as conn:
                expired = conn.execute(sa.text("SELECT queue_worker.expire_audit(NULL, NULL)"))
                assert expired.scalar_one() == 0
                kept = conn.execute(sa.text("SELECT count(*) FROM queue_worker.audit_log"))
                assert kept.scalar_one() == 1
        finally:
            app.dispose()
        # The owner's rows past the age do go (as the workers' retention asks).
        with owner.begin() as conn:
            conn.execute(sa.text("UPDATE queue_worker.audit_log SET at_ms = 0"))
        with app.begin() as conn:
            gone = conn.execute(sa.text("SELECT queue_worker.expire_audit(0, 1000)"))
            assert gone.scalar_one() == 1
        app.dispose()
    finally:
        for service in (api, worker):
            if service is not None:
                service.stop()
        with owner.begin() as conn:
            conn.execute(sa.text(f"DROP OWNED BY {role}"))
            conn.execute(sa.text(f"DROP ROLE {role}"))
        owner.dispose()

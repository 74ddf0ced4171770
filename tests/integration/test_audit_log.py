"""The audit log: every state-changing call past authorization, once, with who, what, target,
outcome and request id; readable with role read, page by page; kept as long as workflows."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.api import auth
from services.contract.audit import audit_log
from services.contract.dbos_tables import with_schemas
from services.worker.retention import Retention
from tests.conftest import BACKENDS, NewDatabase
from tests.support.databases import refuse_audit_rows
from tests.support.polling import wait_for
from tests.support.processes import Api


class Caller:
    def __init__(self, api: Api, token: str | None) -> None:
        self.api = api
        self.headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self.api.http.post(path, json=body, headers={**self.headers, **headers})

    def get(self, path: str) -> Any:
        return self.api.http.get(path, headers=self.headers)


@pytest.fixture(params=BACKENDS)
def system(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase, tmp_path: Path
) -> Iterator[tuple[str, Caller, Caller, Caller]]:
    url = new_migrated_database(request.param)
    reader, reader_line = auth.new_token("dashboard", "read")
    operator, operator_line = auth.new_token("ci-bot", "operate")
    (tmp_path / "tokens").write_text(f"{reader_line}\n{operator_line}\n")
    api = Api(url, tmp_path, API_AUTH="tokens", API_AUTH_TOKENS_FILE=str(tmp_path / "tokens"))
    api.wait_ready()
    yield url, Caller(api, operator), Caller(api, reader), Caller(api, None)
    api.stop()


def test_each_change_is_recorded_once_with_who_what_and_how_it_went(
    system: tuple[str, Caller, Caller, Caller],
) -> None:
    url, operator, reader, nobody = system
    one = operator.post("/workflows", {"num_steps": 1}, **{"X-Request-Id": "req-1"})
    assert one.status_code == 202 and one.headers["X-Request-Id"] == "req-1"
    first = one.json()["workflow_id"]
    # The same idempotent request again: it changes nothing and is not recorded again.
    keyed = {"Idempotency-Key": "nightly-7"}
    assert operator.post("/workflows", {}, **keyed).status_code == 202
    assert operator.post("/workflows", {}, **keyed).headers["Idempotent-Replayed"] == "true"
    assert operator.post("/workflows", {"num_steps": -1}).status_code == 422
    batch = operator.post("/workflows:batch", {"workflows": [{}, {}]})
    assert batch.status_code == 202
    created = [w["workflow_id"] for w in batch.json()["workflows"]]
    assert operator.post(f"/workflows/{first}/cancel").status_code == 202
    resumed = operator.post(f"/workflows/{first}/resume")
    missing = operator.post("/workflows/no-such-workflow/cancel")
    assert missing.status_code == 404
    # Refused before they could act: not written (an anonymous flood must not fill it).
    assert nobody.post("/workflows", {}).status_code == 401
    assert reader.post("/workflows", {}).status_code == 403

    page = reader.get("/audit?limit=100")
    assert page.status_code == 200
    entries = page.json()["entries"]
    assert [(e["action"], e["outcome"]) for e in reversed(entries)] == [
        ("enqueue", 202),
        ("enqueue", 202),
        ("enqueue", 422),
        ("enqueue_batch", 202),
        ("cancel", 202),
        ("resume", resumed.status_code),
        ("cancel", 404),
    ]
    oldest = entries[-1]
    assert oldest["actor"] == "ci-bot" and oldest["roles"] == ["read", "operate"]
    assert oldest["target"] == first and oldest["request_id"] == "req-1"
    assert oldest["detail"] == {"workflow": "workflow"}
    assert entries[3]["detail"] == {"workflows": created} and entries[3]["target"] is None
    assert entries[0]["target"] == "no-such-workflow"
    assert all(e["request_id"] for e in entries) and len({e["id"] for e in entries}) == 7
    assert page.json()["next_cursor"] is None

    # Page by page, newest first, every entry once.
    seen: list[int] = []
    cursor = ""
    while True:
        answer = reader.get(f"/audit?limit=3{cursor}").json()
        seen += [e["id"] for e in answer["entries"]]
        if answer["next_cursor"] is None:
            break
        cursor = f"&cursor={answer['next_cursor']}"
    assert seen == [e["id"] for e in entries]
    assert reader.get("/audit?cursor=x").status_code == 400

    # Retention deletes what is older than the age, as it does finished workflows.
    engine = sa.create_engine(url)
    with with_schemas(engine).begin() as conn:
        conn.execute(sa.update(audit_log).where(audit_log.c.id == oldest["id"]).values(at_ms=0))
    assert Retention(engine).delete_audit(older_than_ms=60_000, batch_size=100) == 1
    engine.dispose()
    assert [e["id"] for e in reader.get("/audit?limit=100").json()["entries"]] == seen[:-1]


def test_without_tokens_the_actor_is_anonymous(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    api = Api(new_migrated_database("sqlite"), tmp_path)
    try:
        api.wait_ready()
        api.enqueue()
        (entry,) = api.http.get("/audit").json()["entries"]
        assert (entry["actor"], entry["roles"], entry["action"]) == ("anonymous", [], "enqueue")
        # A request id that does not look like one is replaced, not stored.
        answer = api.http.post("/workflows", json={}, headers={"X-Request-Id": "a b\tc"})
        assert answer.headers["X-Request-Id"] != "a b\tc"
    finally:
        api.stop()


def test_every_answer_says_its_request_id_and_the_audit_row_has_it(
    system: tuple[str, Caller, Caller, Caller],
) -> None:
    _, operator, reader, nobody = system
    refused = operator.api.http.post(
        "/workflows",
        content=b"{",
        headers={**operator.headers, "Content-Type": "application/json"},
    )
    assert refused.status_code == 400
    given = operator.post("/workflows", {"num_steps": 0}, **{"X-Request-Id": "mine-7"})
    assert given.status_code == 422 and given.headers["X-Request-Id"] == "mine-7"
    for answer in (refused, nobody.get("/workflows"), reader.get("/workflows/nope")):
        assert answer.headers.get("X-Request-Id"), answer.status_code
    entries = reader.get("/audit").json()["entries"]
    assert [(e["outcome"], e["request_id"]) for e in entries] == [
        (422, "mine-7"),
        (400, refused.headers["X-Request-Id"]),
    ]


def test_a_replay_of_a_call_never_recorded_as_done_is_recorded(
    system: tuple[str, Caller, Caller, Caller],
) -> None:
    url, operator, reader, _ = system
    keyed = {"Idempotency-Key": "retried-after-a-timeout"}
    first = operator.post("/workflows", {}, **keyed)
    assert first.status_code == 202
    workflow_id = first.json()["workflow_id"]
    # As when the first call answered 503 on its timeout while its enqueue went through: no
    # row says it was done.
    engine = sa.create_engine(url)
    with with_schemas(engine).begin() as conn:
        conn.execute(sa.update(audit_log).values(outcome=503, target=None))
    engine.dispose()
    assert operator.post("/workflows", {}, **keyed).headers["Idempotent-Replayed"] == "true"
    assert operator.post("/workflows", {}, **keyed).headers["Idempotent-Replayed"] == "true"
    done = [e for e in reader.get("/audit").json()["entries"] if e["target"] == workflow_id]
    assert [(e["action"], e["outcome"]) for e in done] == [("enqueue", 202)]
    # A batch replayed whole made nothing: not recorded again.
    batch = {"workflows": [{"idempotency_key": "batch-once"}]}
    assert operator.post("/workflows:batch", batch).status_code == 202
    assert operator.post("/workflows:batch", batch).json()["workflows"][0]["replayed"] is True
    batches = [e for e in reader.get("/audit").json()["entries"] if e["action"] == "enqueue_batch"]
    assert len(batches) == 1


def test_a_workflow_is_never_created_without_its_audit_row(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # The row goes in with the workflows, in one transaction: when it cannot be written, the
    # enqueue fails whole, for one workflow and for a batch alike.
    url = new_migrated_database("postgres")
    refuse_audit_rows(url, "audit log refused")
    engine = sa.create_engine(url)
    api = Api(url, tmp_path)
    try:
        api.wait_ready()
        one = httpx.post(f"{api.url}/workflows", json={})
        batch = httpx.post(f"{api.url}/workflows:batch", json={"workflows": [{}, {}]})
        assert one.status_code >= 500 and batch.status_code >= 500, (one.text, batch.text)
        with engine.connect() as conn:
            count = sa.text("SELECT count(*) FROM dbos.workflow_status")
            assert conn.execute(count).scalar_one() == 0
    finally:
        api.stop()
        engine.dispose()


def test_an_enqueue_past_its_deadline_keeps_its_rows_both_true(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # The enqueue's write waits on a lock past the request's deadline: the caller gets a 503,
    # then the write goes through. Its row (202, naming the workflow) came with it; the 503
    # the caller got is recorded too, under the same request id.
    url = new_migrated_database("postgres")
    engine = sa.create_engine(url)
    api = Api(url, tmp_path, API_REQUEST_TIMEOUT_SECONDS="1")
    try:
        api.wait_ready()
        with engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE queue_worker.audit_log IN SHARE ROW EXCLUSIVE MODE"))
            answer = httpx.post(f"{api.url}/workflows", json={}, headers={"X-Request-Id": "late-1"})
            assert answer.status_code == 503, answer.text
            locker.rollback()  # the lock goes: the waiting writes go through

        def rows() -> list[tuple[int, str | None]] | None:
            with with_schemas(engine).connect() as conn:
                found = conn.execute(
                    sa.select(audit_log.c.outcome, audit_log.c.target)
                    .where(audit_log.c.request_id == "late-1")
                    .order_by(audit_log.c.outcome)
                ).all()
            return [tuple(r) for r in found] if len(found) == 2 else None

        (enqueued, answered) = wait_for(rows, timeout=30, interval=0.1, what="both rows")
        assert enqueued[0] == 202 and answered == (503, None)
        with engine.connect() as conn:
            status = sa.text("SELECT status FROM dbos.workflow_status WHERE workflow_uuid = :id")
            assert conn.execute(status, {"id": enqueued[1]}).scalar_one() == "ENQUEUED"
        assert "audit.write_unconfirmed" in api.service.log()
        assert "audit.write_failed" not in api.service.log()
    finally:
        api.stop()
        engine.dispose()


def test_a_failed_audit_row_is_no_deduplication_conflict(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    # A unique violation of the audit log's (a trigger stands in for one) fails the enqueue
    # with a 500: it is not a deduplication id held by another workflow (a 409 would say so).
    url = new_migrated_database("postgres")
    refuse_audit_rows(url, "taken", errcode="23505")  # unique_violation
    api = Api(url, tmp_path)
    try:
        api.wait_ready()
        one = httpx.post(f"{api.url}/workflows", json={"deduplication_id": "nightly"})
        batch = httpx.post(
            f"{api.url}/workflows:batch", json={"workflows": [{"deduplication_id": "weekly"}]}
        )
        assert (one.status_code, batch.status_code) == (500, 500), (one.text, batch.text)
    finally:
        api.stop()

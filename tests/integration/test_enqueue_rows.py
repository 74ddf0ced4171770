"""The bulk enqueue writes exactly the rows DBOSClient.enqueue writes, many per statement."""

import threading
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat

from services import contract
from services.api import enqueue_rows
from services.contract import dbos_tables as tables

# The columns that differ between any two enqueues by construction.
PER_ROW = {"workflow_uuid", "creator_xid", "created_at", "updated_at"}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"priority": 7, "deduplication_id": "dedup-1", "workflow_timeout": 30.0},
    {"delay_seconds": 3600.0, "attributes": {"team": "billing", "n": 1}},
    {"authenticated_user": "alice", "authenticated_roles": ["operate"], "app_version": None},
    {"queue_partition_key": "tenant-a", "priority": 2},
]


def _options(workflow_id: str, **extra: Any) -> EnqueueOptions:
    options: dict[str, Any] = {
        "queue_name": contract.QUEUE_NAME,
        "workflow_name": contract.WORKFLOW_NAME,
        "app_version": contract.APP_VERSION,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
        "workflow_id": workflow_id,
        **extra,
    }
    return options  # type: ignore[return-value]


def _row(engine: sa.Engine, table: str, workflow_id: str) -> dict[str, Any]:
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"SELECT * FROM {schema}{table} WHERE workflow_uuid = :id"), {"id": workflow_id}
        ).mappings()
        (found,) = row.all()
    return dict(found)


def _count(engine: sa.Engine, table: str) -> int:
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {schema}{table}")).scalar_one())


@pytest.mark.parametrize("id_given", [True, False], ids=["id-given", "id-new"])
@pytest.mark.parametrize(
    "extra", VARIANTS, ids=["defaults", "options", "delayed", "identity", "partitioned"]
)
def test_rows_are_the_ones_dbos_client_writes(
    engine: Any, extra: dict[str, Any], id_given: bool
) -> None:
    engine, client = engine
    by_dbos = f"dbos-{uuid.uuid4()}"
    dedup = extra.get("deduplication_id")
    client.enqueue(_options(by_dbos, **extra), num_steps=3, step_seconds=0.5)
    if dedup is not None:  # the same deduplication id would collide on the queue
        extra = {**extra, "deduplication_id": f"{dedup}-bulk"}
    options = _options(f"bulk-{uuid.uuid4()}", **extra)
    if not id_given:
        del options["workflow_id"]
    with engine.begin() as conn:
        (written,) = enqueue_rows.write(
            conn, client, [(options, {"num_steps": 3, "step_seconds": 0.5})]
        )
    by_bulk = written.workflow_id
    assert written.created
    if id_given:
        assert by_bulk == options["workflow_id"]
    else:  # a new random id, as DBOS makes them
        assert uuid.UUID(by_bulk).version == 4 and str(uuid.UUID(by_bulk)) == by_bulk

    expected, actual = (
        _row(engine, "workflow_status", by_dbos),
        _row(engine, "workflow_status", by_bulk),
    )
    if dedup is not None:
        assert (expected["deduplication_id"], actual["deduplication_id"]) == (
            dedup,
            f"{dedup}-bulk",
        )
        expected.pop("deduplication_id"), actual.pop("deduplication_id")
    if "delay_seconds" in extra:  # computed from the clock at each enqueue
        assert (
            abs(expected.pop("delay_until_epoch_ms") - actual.pop("delay_until_epoch_ms")) < 60_000
        )
    assert {k: v for k, v in actual.items() if k not in PER_ROW} == {
        k: v for k, v in expected.items() if k not in PER_ROW
    }
    assert actual["creator_xid"] and actual["creator_xid"] != expected["creator_xid"]
    dbos_inputs = _row(engine, "workflow_input", by_dbos)["inputs"]
    assert _row(engine, "workflow_input", by_bulk)["inputs"] == dbos_inputs
    # And DBOS reads the bulk-written workflow back as its own.
    status = client.retrieve_workflow(by_bulk).get_status()
    assert (status.name, status.queue_name, status.input) == (
        contract.WORKFLOW_NAME,
        contract.QUEUE_NAME,
        client.retrieve_workflow(by_dbos).get_status().input,
    )


def test_an_existing_id_comes_back_unchanged_with_its_inputs(engine: Any) -> None:
    engine, client = engine
    existing, new = f"old-{uuid.uuid4()}", f"new-{uuid.uuid4()}"
    client.enqueue(_options(existing), num_steps=1, step_seconds=0.0)
    before = _row(engine, "workflow_status", existing)
    unnamed = _options("unused")
    del unnamed["workflow_id"]
    with engine.begin() as conn:
        written = enqueue_rows.write(
            conn,
            client,
            [
                (_options(new), {"num_steps": 2, "step_seconds": 0.0}),
                (unnamed, {"num_steps": 4, "step_seconds": 0.0}),
                (_options(existing), {"num_steps": 9, "step_seconds": 9.0}),
            ],
        )
    # In the batch's order, though new and given ids go in by statements of their own.
    assert [w.created for w in written] == [True, True, False]
    assert [written[0].workflow_id, written[2].workflow_id] == [new, existing]
    assert _row(engine, "workflow_status", existing) == before
    inputs = _row(engine, "workflow_input", existing)["inputs"]
    assert '"num_steps":1,' in inputs.replace(" ", "")
    inputs = _row(engine, "workflow_input", written[1].workflow_id)["inputs"]
    assert '"num_steps":4,' in inputs.replace(" ", "")


def test_a_thousand_in_one_transaction_all_or_nothing(engine: Any) -> None:
    engine, client = engine
    batch = [
        (_options(f"batch-{uuid.uuid4()}"), {"num_steps": 1, "step_seconds": 0.0})
        for _ in range(1000)
    ]
    with pytest.raises(RuntimeError, match="rolled back"), engine.begin() as conn:
        assert len(enqueue_rows.write(conn, client, batch)) == 1000
        raise RuntimeError("rolled back")
    assert (_count(engine, "workflow_status"), _count(engine, "workflow_input")) == (0, 0)
    with engine.begin() as conn:
        written = enqueue_rows.write(conn, client, batch)
    assert [w.workflow_id for w in written] == [options["workflow_id"] for options, _ in batch]
    assert all(w.created for w in written)
    assert (_count(engine, "workflow_status"), _count(engine, "workflow_input")) == (1000, 1000)


def test_a_taken_deduplication_id_fails_the_whole_batch(engine: Any) -> None:
    engine, client = engine
    client.enqueue(
        _options(f"first-{uuid.uuid4()}", deduplication_id="once"), num_steps=1, step_seconds=0.0
    )
    batch = [
        (_options(f"fine-{uuid.uuid4()}"), {"num_steps": 1, "step_seconds": 0.0}),
        (
            _options(f"dup-{uuid.uuid4()}", deduplication_id="once"),
            {"num_steps": 1, "step_seconds": 0.0},
        ),
    ]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        enqueue_rows.write(conn, client, batch)
    assert (_count(engine, "workflow_status"), _count(engine, "workflow_input")) == (1, 1)


def test_batches_of_the_same_keys_in_opposite_orders_do_not_deadlock(engine: Any) -> None:
    """Two batches (or groups, or API processes) that share keys insert them in one order."""
    engine, client = engine
    failures: list[BaseException] = []

    def write(ids: list[str], start: threading.Barrier) -> None:
        start.wait()
        try:
            with engine.begin() as conn:
                enqueue_rows.write(
                    conn,
                    client,
                    [(_options(i), {"num_steps": 1, "step_seconds": 0.0}) for i in ids],
                )
        except BaseException as exc:
            failures.append(exc)

    for attempt in range(4):
        ids = [f"key-{attempt}-{uuid.uuid4()}" for _ in range(2000)]
        start = threading.Barrier(2)
        threads = [
            threading.Thread(target=write, args=(order, start)) for order in (ids, ids[::-1])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not failures, failures
        assert _count(engine, "workflow_status") == 2000 * (attempt + 1)


def test_an_id_given_twice_in_one_write_is_created_by_its_first_item(engine: Any) -> None:
    engine, client = engine
    twice = f"twice-{uuid.uuid4()}"
    with engine.begin() as conn:
        written = enqueue_rows.write(
            conn,
            client,
            [
                (_options(twice, priority=3), {"num_steps": 2, "step_seconds": 0.0}),
                (_options(f"other-{uuid.uuid4()}"), {"num_steps": 1, "step_seconds": 0.0}),
                (_options(twice, priority=9), {"num_steps": 7, "step_seconds": 0.0}),
            ],
        )
    assert [w.created for w in written] == [True, True, False]
    assert _row(engine, "workflow_status", twice)["priority"] == 3
    inputs = _row(engine, "workflow_input", twice)["inputs"]
    assert '"num_steps":2,' in inputs.replace(" ", "")


def test_the_clients_application_name_is_the_fallback_as_in_dbos(engine: Any) -> None:
    engine, _ = engine
    named = DBOSClient(
        system_database_engine=engine,
        dbos_system_schema=tables.DBOS_SCHEMA,
        application_name=contract.APP_NAME,
    )
    try:
        by_dbos, by_bulk = f"dbos-{uuid.uuid4()}", f"bulk-{uuid.uuid4()}"
        named.enqueue(_options(by_dbos), num_steps=1, step_seconds=0.0)
        with engine.begin() as conn:
            enqueue_rows.write(
                conn, named, [(_options(by_bulk), {"num_steps": 1, "step_seconds": 0.0})]
            )
    finally:
        named.destroy()
    names = [_row(engine, "workflow_status", i)["application_name"] for i in (by_dbos, by_bulk)]
    assert names == [contract.APP_NAME, contract.APP_NAME]

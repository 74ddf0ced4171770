"""Steps as DBOS records them: each operation once completed, a sleep ahead of its wake time."""

import json
import time
import uuid
from typing import Any

import sqlalchemy as sa
from dbos import DBOSClient, WorkflowSerializationFormat

from services import contract
from services.api.steps import StepError, read_steps


def _enqueue(client: DBOSClient) -> str:
    workflow_id = f"steps-{uuid.uuid4()}"
    client.enqueue(
        {
            "queue_name": contract.QUEUE_NAME,
            "workflow_name": contract.WORKFLOW_NAME,
            "workflow_id": workflow_id,
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        },
        1,
        0.0,
    )
    return workflow_id


def test_statuses_follow_how_dbos_records_operations(engine: Any) -> None:
    engine, client = engine
    workflow_id = _enqueue(client)
    now = int(time.time() * 1000)
    failure = json.dumps({"name": "PaymentDeclined", "message": "declined"})
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    rows = [
        (1, "step", now - 2000, now - 1000, None, None),
        (2, "DBOS.sleep", now, now + 600_000, None, None),  # asleep for ten more minutes
        (3, "written-before-times", None, None, None, None),
        (4, "charge", now - 900, now - 800, failure, "portable_json"),
    ]
    with engine.begin() as conn:
        for function_id, name, started, completed, error, serialization in rows:
            conn.execute(
                sa.text(
                    f"INSERT INTO {schema}operation_outputs (workflow_uuid, function_id, "
                    "function_name, started_at_epoch_ms, completed_at_epoch_ms, error, "
                    "serialization) VALUES (:w, :f, :n, :s, :c, :e, :z)"
                ),
                {
                    "w": workflow_id,
                    "f": function_id,
                    "n": name,
                    "s": started,
                    "c": completed,
                    "e": error,
                    "z": serialization,
                },
            )
    with engine.connect() as conn:
        steps = read_steps(conn, workflow_id)
        unknown = read_steps(conn, "no-such-workflow")
        queued = read_steps(conn, _enqueue(client))
    assert steps is not None
    assert [(s.step_id, s.name, s.status) for s in steps] == [
        (1, "step", "SUCCESS"),
        (2, "DBOS.sleep", "RUNNING"),
        (3, "written-before-times", "SUCCESS"),
        (4, "charge", "ERROR"),
    ]
    assert steps[3].error == StepError("PaymentDeclined", "declined")
    assert (unknown, queued) == (None, [])

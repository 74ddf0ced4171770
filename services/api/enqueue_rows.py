"""Enqueue many workflows with one statement per table: DBOS's own rows, written in bulk.

`DBOSClient.enqueue` (and `enqueue_in_transaction`) writes each workflow with two single-row
statements and about half a millisecond of client CPU: 1,350-1,450 workflows/s from one
thread, in one transaction or many (measured, benchmarks/results/benchmarks.md). Here each row
is built by DBOS itself (the client's `_build_enqueue_status`: its option checks, serializer
and defaults), then all rows go to `workflow_status` and `workflow_input` in one `INSERT ...
SELECT FROM json_to_recordset(...)` each on PostgreSQL.

The columns written are those DBOS 3.4's insert writes for a client's enqueue (the pinned
version; tests/integration/test_enqueue_rows.py compares every column of both tables with
the rows `DBOSClient.enqueue` writes). A workflow whose id exists already is left as it is,
inputs included, and reported as not created: the caller decides whether that is a replay.
"""

import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from dbos import DBOSClient, EnqueueOptions
from sqlalchemy.dialects import sqlite

from services.contract import dbos_tables as tables

# workflow_status columns DBOS writes on a client enqueue, with their PostgreSQL types.
# The others keep their defaults, as in DBOS's insert (None there means the column's NULL).
STATUS_COLUMNS: Final = {
    "workflow_uuid": "text",
    "status": "text",
    "name": "text",
    "class_name": "text",
    "config_name": "text",
    "application_version": "text",
    "authenticated_user": "text",
    "authenticated_roles": "text",
    "queue_name": "text",
    "workflow_timeout_ms": "int8",
    "deduplication_id": "text",
    "priority": "int4",
    "serialization": "text",
    "queue_partition_key": "text",
    "creator_xid": "text",
    "delay_until_epoch_ms": "int8",
    "attributes": "jsonb",
    "application_name": "text",
}


# A workflow's enqueue options and its keyword arguments.
Item = tuple[EnqueueOptions, dict[str, Any]]


@dataclass(frozen=True)
class Written:
    """One workflow of the batch: `created` is False when its id existed before."""

    workflow_id: str
    created: bool


def write(
    conn: sa.Connection,
    client: DBOSClient,
    batch: Sequence[tuple[EnqueueOptions, dict[str, Any]]],
) -> list[Written]:
    """Insert the batch's workflows (options, keyword arguments) in the caller's transaction,
    in order.

    A workflow without an id in its options gets a new random one (as DBOS gives it), so it
    cannot exist yet: those rows go in with plain inserts. Rows with an id given go in with ON
    CONFLICT DO NOTHING; an id given twice is created by its first item, and the second finds
    it existing. A deduplication id already taken on its queue fails the whole statement
    (IntegrityError), as it fails DBOS's own enqueue.
    """
    new_ids = _random_ids(2 * len(batch))  # the new workflows' ids, and every creator token
    rows: list[dict[str, Any]] = []
    inputs: list[str | None] = []
    named: list[bool] = []
    for index, (options, kwargs) in enumerate(batch):
        has_id = options.get("workflow_id") is not None
        if not has_id:
            options = {**options, "workflow_id": new_ids[2 * index]}
        # DBOSClient's own builder: DBOS's, plus the client's application name as fallback.
        workflow_id, status = client._build_enqueue_status(options, **kwargs)
        row = {column: status.get(column) for column in STATUS_COLUMNS}
        row["workflow_uuid"] = workflow_id
        row["application_version"] = status["app_version"]
        row["config_name"] = status["config_name"]
        row["creator_xid"] = new_ids[2 * index + 1]
        rows.append(row)
        inputs.append(status["inputs"])
        named.append(has_id)
    if conn.dialect.name == "postgresql":
        created: set[str] = set()
        for given, statements in ((False, _NEW), (True, _GIVEN)):
            chosen = [i for i, has_id in enumerate(named) if has_id == given]
            if given:
                # In one order across all writers: two transactions inserting the same ids in
                # opposite orders would each wait for the other (a deadlock). Stable, so an
                # id given twice is still created by its first item.
                chosen.sort(key=lambda i: str(rows[i]["workflow_uuid"]))
            if chosen:
                created |= _write_postgresql(
                    conn, [rows[i] for i in chosen], [inputs[i] for i in chosen], statements
                )
    else:
        created = _write_each(conn, rows, inputs)
    # An id given twice is created once, by its first item.
    result: list[Written] = []
    for row in rows:
        workflow_id = str(row["workflow_uuid"])
        result.append(Written(workflow_id, workflow_id in created))
        created.discard(workflow_id)
    return result


def _random_ids(count: int) -> list[str]:
    """Random (version 4) UUIDs as DBOS makes them, from one read of the system's randomness."""
    randomness = os.urandom(16 * count)
    return [
        str(uuid.UUID(bytes=randomness[16 * i : 16 * (i + 1)], version=4)) for i in range(count)
    ]


def _statements(on_conflict: str) -> tuple[sa.TextClause, sa.TextClause]:
    record = ", ".join(f"{c} {t}" for c, t in STATUS_COLUMNS.items())
    status = sa.text(
        f"INSERT INTO {tables.DBOS_SCHEMA}.workflow_status ({', '.join(STATUS_COLUMNS)}) "
        f"SELECT * FROM json_to_recordset(CAST(:rows AS json)) AS r({record}) "
        f"{on_conflict} RETURNING workflow_uuid"
    )
    inputs = sa.text(
        f"INSERT INTO {tables.DBOS_SCHEMA}.workflow_input (workflow_uuid, inputs) "
        "SELECT * FROM json_to_recordset(CAST(:rows AS json)) "
        f"AS r(workflow_uuid text, inputs text) {on_conflict}"
    )
    return status, inputs


# New ids cannot collide: plain inserts (a speculative insert costs PostgreSQL a fifth more).
_NEW: Final = _statements("")
# Given ids: an existing row is left as it is, and only the new ones come back.
_GIVEN: Final = _statements("ON CONFLICT (workflow_uuid) DO NOTHING")


def _write_postgresql(
    conn: sa.Connection,
    rows: list[dict[str, Any]],
    inputs: list[str | None],
    statements: tuple[sa.TextClause, sa.TextClause],
) -> set[str]:
    # One JSON document per statement: the server unpacks it (one parameter to send, where
    # an array per column cost more client CPU than the inserts took on the server).
    insert_status, insert_inputs = statements
    created = set(conn.execute(insert_status, {"rows": json.dumps(rows)}).scalars())
    fresh: dict[str, dict[str, Any]] = {}
    for row, row_inputs in zip(rows, inputs, strict=True):
        workflow_id = row["workflow_uuid"]
        if workflow_id in created and workflow_id not in fresh:
            fresh[workflow_id] = {"workflow_uuid": workflow_id, "inputs": row_inputs}
    if fresh:
        conn.execute(insert_inputs, {"rows": json.dumps(list(fresh.values()))})
    return created


_SQL_TYPES: Final[dict[str, type[sa.types.TypeEngine[Any]]]] = {
    "text": sa.Text,
    "int4": sa.Integer,
    "int8": sa.BigInteger,
    "jsonb": sa.JSON,
}
_SQLITE_STATUS: Final = sa.Table(
    "workflow_status",
    sa.MetaData(),
    *(
        sa.Column(column, _SQL_TYPES[kind], primary_key=column == "workflow_uuid")
        for column, kind in STATUS_COLUMNS.items()
    ),
)


def _write_each(
    conn: sa.Connection, rows: list[dict[str, Any]], inputs: list[str | None]
) -> set[str]:
    """SQLite (the local database): one row at a time, with the same statements' meaning."""
    created: set[str] = set()
    for row, row_inputs in zip(rows, inputs, strict=True):
        inserted = conn.execute(
            sqlite.insert(_SQLITE_STATUS)
            .values(row)
            .on_conflict_do_nothing(index_elements=["workflow_uuid"])
            .returning(_SQLITE_STATUS.c.workflow_uuid)
        ).scalar_one_or_none()
        if inserted is None:
            continue
        created.add(inserted)
        conn.execute(
            sqlite.insert(tables.workflow_input)
            .values(workflow_uuid=inserted, inputs=row_inputs)
            .on_conflict_do_nothing(index_elements=["workflow_uuid"])
        )
    return created

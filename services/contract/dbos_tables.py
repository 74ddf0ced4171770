"""DBOS's system tables as both services read (and, for recovery and retention, change) them:
the columns of DBOS 3.4's tables this project touches, its workflow statuses, and the mapping
of schemas per database (schema "dbos" on PostgreSQL, the main schema on SQLite)."""

import json
from typing import Any, Final

import sqlalchemy as sa
from dbos import WorkflowStatusString
from sqlalchemy.dialects import postgresql

from services.contract import fleet

DBOS_SCHEMA: Final = "dbos"
# The attribute in which the API records the id of the HTTP request that enqueued a workflow:
# the worker's log lines for that workflow carry it.
REQUEST_ID_ATTRIBUTE: Final = "queue_worker_request_id"

# DBOS's statuses, in its own order; and the ones that are still in a queue's hands.
STATUSES: Final = tuple(status.value for status in WorkflowStatusString)
QUEUED_STATUSES: Final = tuple(
    s.value
    for s in (
        WorkflowStatusString.ENQUEUED,
        WorkflowStatusString.PENDING,
        WorkflowStatusString.DELAYED,
    )
)
FINISHED_STATUSES: Final = tuple(
    s.value
    for s in (
        WorkflowStatusString.SUCCESS,
        WorkflowStatusString.ERROR,
        WorkflowStatusString.CANCELLED,
        WorkflowStatusString.MAX_RECOVERY_ATTEMPTS_EXCEEDED,
    )
)

metadata = sa.MetaData()
# The columns this project reads. DBOS's tables live in schema "dbos" on PostgreSQL and in the
# main schema on SQLite; `with_schemas` picks one per engine.
workflow_status = sa.Table(
    "workflow_status",
    metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("status", sa.Text),
    sa.Column("name", sa.Text),
    sa.Column("queue_name", sa.Text),
    sa.Column("executor_id", sa.Text),
    sa.Column("application_version", sa.Text),
    sa.Column("priority", sa.Integer),
    sa.Column("inputs", sa.Text),
    sa.Column("serialization", sa.Text),
    sa.Column("created_at", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("started_at_epoch_ms", sa.BigInteger),
    sa.Column("owner_xid", sa.Text),
    sa.Column("recovery_attempts", sa.BigInteger),
    sa.Column("workflow_deadline_epoch_ms", sa.BigInteger),
    sa.Column("deduplication_id", sa.Text),
    sa.Column("queue_partition_key", sa.Text),
    # JSON: jsonb on PostgreSQL (decoded by the driver), text on SQLite (decoded by the reader).
    sa.Column("attributes", sa.Text().with_variant(postgresql.JSONB(), "postgresql")),
    sa.Column("delay_until_epoch_ms", sa.BigInteger),
    schema=DBOS_SCHEMA,
)
queues = sa.Table(
    "queues",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("worker_concurrency", sa.Integer),
    # Across the fleet (DBOS's global_concurrency), and per partition of a partitioned queue.
    sa.Column("concurrency", sa.Integer),
    sa.Column("partition_concurrency", sa.Integer),
    schema=DBOS_SCHEMA,
)
# Versions as DBOS registers them at launch: the newest an application sees is its "latest",
# which takes work enqueued without a version.
application_versions = sa.Table(
    "application_versions",
    metadata,
    sa.Column("version_id", sa.Text, primary_key=True),
    sa.Column("version_name", sa.Text),
    sa.Column("version_timestamp", sa.BigInteger),
    sa.Column("application_name", sa.Text),
    schema=DBOS_SCHEMA,
)
workflow_input = sa.Table(
    "workflow_input",
    metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("inputs", sa.Text),
    schema=DBOS_SCHEMA,
)
workflow_events = sa.Table(
    "workflow_events",
    metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("serialization", sa.Text),
    schema=DBOS_SCHEMA,
)

operation_outputs = sa.Table(
    "operation_outputs",
    metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("function_id", sa.Integer, primary_key=True),
    sa.Column("function_name", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("child_workflow_id", sa.Text),
    sa.Column("started_at_epoch_ms", sa.BigInteger),
    sa.Column("completed_at_epoch_ms", sa.BigInteger),
    sa.Column("serialization", sa.Text),
    schema=DBOS_SCHEMA,
)
# Owned by a workflow without a foreign key to workflow_status (the others cascade on delete):
# what retention deletes with a workflow, as DBOS's own delete_workflows does.
workflow_output = sa.Table(
    "workflow_output", metadata, sa.Column("workflow_uuid", sa.Text), schema=DBOS_SCHEMA
)
payload_tables: Final = (workflow_input, workflow_output, operation_outputs)


# The version of DBOS's schema, which its migrations keep (one row).
dbos_migrations = sa.Table(
    "dbos_migrations", metadata, sa.Column("version", sa.BigInteger), schema=DBOS_SCHEMA
)


def with_schemas(engine: sa.Engine) -> sa.Engine:
    """The engine, with DBOS's and the fleet's schemas mapped for its database (SQLite has
    only one schema)."""
    translate = fleet.translate_schemas(engine.dialect.name)
    if engine.dialect.name != "postgresql":
        translate[DBOS_SCHEMA] = None
    return engine.execution_options(schema_translate_map=translate)


def now_ms(engine: sa.Engine) -> sa.ColumnElement[int]:
    """The database's clock in epoch milliseconds (the clock heartbeats are written with)."""
    return fleet.clock_ms(engine.dialect.name)


def string_attribute(attributes: Any, key: str) -> str | None:
    """A string among a workflow's attributes (its `attributes` column: JSON, which SQLite
    stores as text), or None when it has none or another kind of value."""
    if isinstance(attributes, str):
        try:
            attributes = json.loads(attributes)
        except ValueError:
            return None
    value = attributes.get(key) if isinstance(attributes, dict) else None
    return value if isinstance(value, str) else None

"""The tables the API reads: DBOS's documented system tables, and the fleet's (the contract's)."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.contract import fleet

DBOS_SCHEMA = "dbos"

_metadata = sa.MetaData()
# The columns this project reads. DBOS's tables live in schema "dbos" on PostgreSQL and in the
# main schema on SQLite; `with_schemas` picks one per engine.
workflow_status = sa.Table(
    "workflow_status",
    _metadata,
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
)
queues = sa.Table(
    "queues",
    _metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("worker_concurrency", sa.Integer),
    # Across the fleet (DBOS's global_concurrency), and per partition of a partitioned queue.
    sa.Column("concurrency", sa.Integer),
    sa.Column("partition_concurrency", sa.Integer),
)
workflow_input = sa.Table(
    "workflow_input",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("inputs", sa.Text),
)
workflow_events = sa.Table(
    "workflow_events",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text),
    sa.Column("serialization", sa.Text),
)

operation_outputs = sa.Table(
    "operation_outputs",
    _metadata,
    sa.Column("workflow_uuid", sa.Text, primary_key=True),
    sa.Column("function_id", sa.Integer, primary_key=True),
    sa.Column("function_name", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("child_workflow_id", sa.Text),
    sa.Column("started_at_epoch_ms", sa.BigInteger),
    sa.Column("completed_at_epoch_ms", sa.BigInteger),
    sa.Column("serialization", sa.Text),
)


def with_schemas(engine: sa.Engine) -> sa.Engine:
    """The engine, with table schemas mapped for its database (SQLite has only one schema)."""
    dialect = engine.dialect.name
    translate = fleet.translate_schemas(dialect)
    translate[None] = DBOS_SCHEMA if dialect == "postgresql" else None
    return engine.execution_options(schema_translate_map=translate)


def now_ms(engine: sa.Engine) -> sa.ColumnElement[int]:
    """The database's clock in epoch milliseconds (the clock heartbeats are written with)."""
    return fleet.clock_ms(engine.dialect.name)

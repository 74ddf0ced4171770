"""The fleet's tables and rules, shared by the workers (who write them) and the API (who reads).

Times are the database's clock in epoch milliseconds, so processes on hosts with skewed clocks
still agree on who is alive. Schema FLEET_SCHEMA on PostgreSQL; the main schema on SQLite.
"""

from typing import Final

import sqlalchemy as sa

from services.contract import FLEET_SCHEMA, HEARTBEATS_TABLE

# The fleet tables' version; `python -m services.worker migrate` brings a database up to it.
# 1: heartbeats. 2: healthy_since, executions, schema_version.
SCHEMA_VERSION: Final = 2

metadata = sa.MetaData()
heartbeats = sa.Table(
    HEARTBEATS_TABLE,
    metadata,
    sa.Column("executor_id", sa.Text, primary_key=True),
    sa.Column("application_version", sa.Text, nullable=False),
    sa.Column("hostname", sa.Text, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
    sa.Column("stopped_at", sa.BigInteger, nullable=True),
    # Start of the executor's current run of heartbeats without a gap (see the reaper).
    sa.Column("healthy_since", sa.BigInteger, nullable=True),
    schema=FLEET_SCHEMA,
)
# The workflows each executor was running its code for at its last heartbeat: a resume waits
# until the cancelled execution is gone from here, so two executions never run at once.
executions = sa.Table(
    "worker_executions",
    metadata,
    sa.Column("executor_id", sa.Text, primary_key=True),
    sa.Column("workflow_id", sa.Text, primary_key=True),
    schema=FLEET_SCHEMA,
)
schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
    schema=FLEET_SCHEMA,
)


def clock_ms(dialect: str) -> sa.ColumnElement[int]:
    """The database's clock now, in epoch milliseconds: what heartbeats are written with."""
    if dialect == "postgresql":
        epoch = sa.func.extract("epoch", sa.func.clock_timestamp())
        return sa.cast(epoch * 1000, sa.BigInteger)
    return sa.cast((sa.func.julianday("now") - 2440587.5) * 86_400_000, sa.BigInteger)


def transaction_clock_ms(dialect: str) -> sa.ColumnElement[int]:
    """The database's clock when the transaction began: the "now" to judge others by.

    Never later than the data a statement of the transaction reads, so a statement that sat
    behind a stalled database judges heartbeats by the time they were current, not by the
    time the stall ended (when every heartbeat looks stale).
    """
    if dialect == "postgresql":
        return sa.cast(sa.func.extract("epoch", sa.func.now()) * 1000, sa.BigInteger)
    return clock_ms(dialect)


def clock_slack_ms(dialect: str) -> int:
    """How far DBOS's own timestamps may lag our clock: SQLite's are in whole seconds."""
    return 0 if dialect == "postgresql" else 1000


def is_alive(now: sa.ColumnElement[int], grace_ms: int) -> sa.ColumnElement[bool]:
    """The one rule for "this executor is alive": not stopped, heard from within the grace."""
    return sa.and_(heartbeats.c.stopped_at.is_(None), heartbeats.c.heartbeat_at >= now - grace_ms)


def owner_is_gone(
    executor_id: sa.ColumnElement[str],
    updated_at: sa.ColumnElement[int],
    now: sa.ColumnElement[int],
    grace_ms: int,
    dialect: str,
) -> sa.ColumnElement[bool]:
    """The one rule for "work of this executor is orphaned" (for PENDING rows).

    A known executor that is not alive; or one the table never saw (workers join before they
    claim anything, so one from before the table existed) once its row has been quiet for the
    grace period plus the clock slack.
    """
    known = sa.select(heartbeats.c.executor_id)
    live = sa.select(heartbeats.c.executor_id).where(is_alive(now, grace_ms))
    return sa.or_(
        sa.and_(executor_id.in_(known), executor_id.not_in(live)),
        sa.and_(
            executor_id.not_in(known),
            updated_at < now - grace_ms - clock_slack_ms(dialect),
        ),
    )


def translate_schemas(dialect: str) -> dict[str | None, str | None]:
    """schema_translate_map entries for the fleet's tables: SQLite has only one schema."""
    return {} if dialect == "postgresql" else {FLEET_SCHEMA: None}

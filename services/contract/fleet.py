"""The fleet's tables and rules, shared by the workers (who write them) and the API (who reads).

Times are the database's clock in epoch milliseconds, so processes on hosts with skewed clocks
still agree on who is alive. Schema FLEET_SCHEMA on PostgreSQL; the main schema on SQLite.
"""

from collections.abc import Callable
from typing import Final

import sqlalchemy as sa

from services.contract import FLEET_SCHEMA, HEARTBEATS_TABLE

# The fleet tables' version; `python -m services.worker migrate` brings a database up to it.
# 1: heartbeats. 2: healthy_since, grace_ms, executions, schema_version.
SCHEMA_VERSION: Final = 4

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
    # The grace period this executor promises to heartbeat within (its own setting): it is
    # judged by it, or by the judge's own setting where that is longer.
    sa.Column("grace_ms", sa.BigInteger, nullable=True),
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


# How far DBOS's own timestamps may be behind the moment they became visible: SQLite's are in
# whole seconds; PostgreSQL's are the writing transaction's start, a moment before its commit.
CLOCK_SLACK_MS: Final = 1000


def is_alive(now: sa.ColumnElement[int], grace_ms: int) -> sa.ColumnElement[bool]:
    """Whether an executor was heard from within its grace period (`grace_of`: what /executors
    and the live-executors metric show). Never enough to take its work: see `owner_is_gone`."""
    return sa.and_(
        heartbeats.c.stopped_at.is_(None),
        heartbeats.c.heartbeat_at >= now - grace_of(heartbeats, grace_ms),
    )


def grace_of(executor: sa.FromClause, grace_ms: int) -> sa.ColumnElement[int]:
    """The grace an executor is judged by: its own, or the judge's where that is longer (and
    for a worker of the first release, which declares none)."""
    declared = executor.c.grace_ms
    return sa.case(
        (sa.and_(declared.is_not(None), declared > grace_ms), declared), else_=sa.literal(grace_ms)
    )


def silent_while_witnessed(
    silent_since: sa.ColumnElement[int],
    witness: sa.FromClause,
    grace_ms: int | sa.ColumnElement[int],
) -> sa.ColumnElement[bool]:
    """Whether the witness (a row of `heartbeats`) beat without a gap for `grace_ms` after
    `silent_since`, the last sign of life of someone else.

    The one rule for "dead". Silence alone proves nothing: while the database hangs or is
    unreachable everyone is silent, and right after, everyone's heartbeat is stale. Silence
    while another executor reached the database every two heartbeat intervals does: a live,
    connected executor heartbeats every interval, so it cannot stay silent for the grace period
    (at least four intervals and a reconnect) while the witness got through. Judged on
    recorded heartbeats, not on the time of the judging statement, so a statement that waited
    behind a stall judges the same as one that did not.
    """
    start = sa.case(
        (witness.c.healthy_since > silent_since, witness.c.healthy_since), else_=silent_since
    )
    return sa.and_(
        witness.c.healthy_since.is_not(None),
        witness.c.stopped_at.is_(None),
        witness.c.heartbeat_at - start >= grace_ms,
    )


# How a judge tells that someone was silent for a grace period since a moment: given that
# moment and the grace (ms), whether the silence is proven.
SilentFor = Callable[[sa.ColumnElement[int], sa.ColumnElement[int] | int], sa.ColumnElement[bool]]


def by_clock(now: sa.ColumnElement[int]) -> SilentFor:
    """Silence judged by the clock: the grace has passed since the last sign of life. What the
    API shows (orphaned work right now); never a reason to act, since right after a database
    stall everyone's heartbeat is stale."""
    return lambda since, grace_ms: since <= now - grace_ms


def by_witness(witness: sa.FromClause) -> SilentFor:
    """Silence judged by a witness that beat through the grace period meanwhile
    (`silent_while_witnessed`): what the reaper acts on."""
    return lambda since, grace_ms: silent_while_witnessed(since, witness, grace_ms)


def owner_is_gone(
    executor_id: sa.ColumnElement[str],
    updated_at: sa.ColumnElement[int],
    grace_ms: int,
    silent_for: SilentFor,
) -> sa.ColumnElement[bool]:
    """The one rule for "work of this executor is orphaned" (for PENDING rows), the API's
    count (`by_clock`) and the reaper (`by_witness`) alike: the executor stopped, or it was
    silent for its grace period (`grace_of`). An executor the table never saw (workers join
    before they claim anything, so one from before the table existed) counts as silent since
    its row last changed, give or take the clock slack.
    """
    owner = heartbeats.alias("owner")
    # Explicitly correlated: nested in an UPDATE's subquery, SQLAlchemy would otherwise add
    # the outer table to this FROM, and judge every row by any silent executor.
    known = (
        sa.select(owner.c.executor_id)
        .where(owner.c.executor_id == executor_id)
        .correlate_except(owner)
    )
    gone = (
        sa.select(sa.literal(1))
        .where(
            owner.c.executor_id == executor_id,
            sa.or_(
                owner.c.stopped_at.is_not(None),
                silent_for(owner.c.heartbeat_at, grace_of(owner, grace_ms)),
            ),
        )
        .correlate_except(owner)
        .exists()
    )
    unknown_and_quiet = sa.and_(~known.exists(), silent_for(updated_at + CLOCK_SLACK_MS, grace_ms))
    return sa.or_(gone, unknown_and_quiet)


def translate_schemas(dialect: str) -> dict[str | None, str | None]:
    """schema_translate_map entries for the fleet's tables: SQLite has only one schema."""
    return {} if dialect == "postgresql" else {FLEET_SCHEMA: None}

"""The audit log: one row per state-changing call of the API (who, when, what, target, outcome,
request id), in the fleet's schema. The API writes and lists it; the migration creates it, and
the workers' retention deletes rows past the age of finished workflows.

On PostgreSQL the application role may only read and add rows: its retention goes through
EXPIRE_FUNCTION, which the schema's owner defines (SECURITY DEFINER) to delete nothing younger
than the age in `audit_policy`, which only the owner (the migration) sets: a worker running
someone's code cannot rewrite or erase the record of recent calls."""

import sqlalchemy as sa

from services.contract import FLEET_SCHEMA
from services.contract.fleet import metadata

audit_log = sa.Table(
    "audit_log",
    metadata,
    # Increasing: the listing pages by it, newest first. An identity column: inserting needs
    # no right on a sequence (the application role has rights on the tables only).
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True
    ),
    # The database's clock, epoch milliseconds.
    sa.Column("at_ms", sa.BigInteger, nullable=False),
    # The token's name, or "anonymous" where the API takes no tokens (API_AUTH=none).
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("roles", sa.Text, nullable=False),  # JSON array
    # enqueue, enqueue_batch, cancel, resume.
    sa.Column("action", sa.Text, nullable=False),
    # The workflow acted on, when there is one.
    sa.Column("target", sa.Text, nullable=True),
    # The answer's HTTP status.
    sa.Column("outcome", sa.Integer, nullable=False),
    sa.Column("request_id", sa.Text, nullable=False),
    # JSON: what else says what was done (the workflows a batch created, a workflow's type).
    sa.Column("detail", sa.Text, nullable=True),
    sa.Index("audit_log_at_ms", "at_ms"),
    # Whether a workflow's enqueue was recorded (a replay of one that was not is).
    sa.Index("audit_log_target", "target"),
    schema=FLEET_SCHEMA,
)

# The youngest age (ms) the retention may delete, as the migration last set it from
# RETENTION_SECONDS (one row).
audit_policy = sa.Table(
    "audit_policy",
    metadata,
    sa.Column("min_age_ms", sa.BigInteger, nullable=False),
    schema=FLEET_SCHEMA,
)
EXPIRE_FUNCTION = f"{FLEET_SCHEMA}.expire_audit"
# Until the migration sets the age from RETENTION_SECONDS (and its default): seven days.
DEFAULT_MIN_AGE_MS = 7 * 86_400_000

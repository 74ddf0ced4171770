"""Creating and upgrading the fleet's tables: versioned steps, run once under a lock."""

from collections.abc import Callable

import sqlalchemy as sa

from services.contract import FLEET_SCHEMA, logs
from services.contract.audit import DEFAULT_MIN_AGE_MS, EXPIRE_FUNCTION, audit_log, audit_policy
from services.contract.dbos_tables import dbos_migrations
from services.contract.fleet import SCHEMA_VERSION, executions, heartbeats, schema_version

log = logs.get_logger(__name__)

# Key of the PostgreSQL advisory lock that serializes schema changes across processes.
_SCHEMA_LOCK = 0x7177_0001
_UPGRADE_ATTEMPTS = 3


class SchemaOutOfDate(RuntimeError):
    """The fleet's tables are older than this code needs; the message says what to run."""


def _create_heartbeats(conn: sa.Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{FLEET_SCHEMA}"'))
    heartbeats.create(conn, checkfirst=True)


def _add_health_and_executions(conn: sa.Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns(heartbeats.name, _schema(conn))}
    table = heartbeats.name if _schema(conn) is None else f'"{FLEET_SCHEMA}".{heartbeats.name}'
    for column in ("healthy_since", "grace_ms"):
        if column not in columns:
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {column} BIGINT"))
    executions.create(conn, checkfirst=True)
    schema_version.create(conn, checkfirst=True)


def _add_audit_log(conn: sa.Connection) -> None:
    audit_log.create(conn, checkfirst=True)


def _guard_audit_log(conn: sa.Connection) -> None:
    """The retention's policy table (with the default age until the migration sets its own)
    and, on PostgreSQL, the one way the application role may delete audit rows
    (services.contract.audit)."""
    audit_policy.create(conn, checkfirst=True)
    if conn.execute(sa.select(sa.func.count()).select_from(audit_policy)).scalar_one() == 0:
        conn.execute(sa.insert(audit_policy).values(min_age_ms=DEFAULT_MIN_AGE_MS))
    if conn.dialect.name != "postgresql":
        return
    log, policy = f'"{FLEET_SCHEMA}".{audit_log.name}', f'"{FLEET_SCHEMA}".{audit_policy.name}'
    conn.execute(
        sa.text(
            f"""CREATE OR REPLACE FUNCTION {EXPIRE_FUNCTION}(older_than_ms bigint, batch integer)
            RETURNS integer LANGUAGE sql SECURITY DEFINER
            SET search_path = pg_catalog, pg_temp AS $$
              WITH gone AS (
                DELETE FROM {log} WHERE id IN (
                  SELECT id FROM {log}
                  WHERE at_ms < (extract(epoch FROM clock_timestamp()) * 1000)::bigint
                    - greatest(
                        older_than_ms,
                        coalesce((SELECT max(min_age_ms) FROM {policy}), {DEFAULT_MIN_AGE_MS}))
                  ORDER BY at_ms LIMIT least(coalesce(batch, 1000), 10000))
                RETURNING 1)
              SELECT count(*)::integer FROM gone
            $$"""
        )
    )
    conn.execute(sa.text(f"REVOKE ALL ON FUNCTION {EXPIRE_FUNCTION}(bigint, integer) FROM PUBLIC"))


def set_audit_retention(engine: sa.Engine, min_age_ms: int) -> None:
    """The youngest audit rows the retention may delete (the migration sets it from
    RETENTION_SECONDS, as the schema's owner)."""
    with engine.begin() as conn:
        conn.execute(sa.delete(audit_policy))
        conn.execute(sa.insert(audit_policy).values(min_age_ms=min_age_ms))


# Step N brings the tables from version N-1 to N. Steps are additive, so workers of the
# previous release keep running against an upgraded database during a rolling update.
_STEPS: dict[int, Callable[[sa.Connection], None]] = {
    1: _create_heartbeats,
    2: _add_health_and_executions,
    3: _add_audit_log,
    4: _guard_audit_log,
}
assert max(_STEPS) == SCHEMA_VERSION


def _schema(conn: sa.Connection) -> str | None:
    return FLEET_SCHEMA if conn.dialect.name == "postgresql" else None


def installed_version(conn: sa.Connection) -> int:
    """The version of the fleet's tables in this database; 0 when there are none."""
    inspector = sa.inspect(conn)
    if inspector.has_table(schema_version.name, schema=_schema(conn)):
        version = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar()
        if version is not None:
            return int(version)
    # Version 1 kept no version number: its heartbeat table is the sign of it.
    return 1 if inspector.has_table(heartbeats.name, schema=_schema(conn)) else 0


def upgrade(engine: sa.Engine) -> int:
    """Bring the fleet's tables to SCHEMA_VERSION; safe when many processes start at once.

    Returns the version found before. Does nothing (no DDL) when already current, so a worker
    whose role may not run DDL starts fine once `migrate` has run.
    """
    with engine.connect() as conn:
        found = installed_version(conn)
    if found >= SCHEMA_VERSION:
        return found
    for attempt in range(1, _UPGRADE_ATTEMPTS + 1):
        try:
            _upgrade_from(engine)
            return found
        except sa.exc.DBAPIError:
            # SQLite has no lock for DDL here: another process may have made the same change
            # between our check and our statement. Look again; give up only if still behind.
            with engine.connect() as conn:
                if installed_version(conn) >= SCHEMA_VERSION:
                    return found
            if attempt == _UPGRADE_ATTEMPTS:
                raise
    return found


def _upgrade_from(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
        found = installed_version(conn)  # another process may have upgraded meanwhile
        for version in range(found + 1, SCHEMA_VERSION + 1):
            _STEPS[version](conn)
        if found < SCHEMA_VERSION:
            conn.execute(sa.delete(schema_version))
            conn.execute(sa.insert(schema_version).values(version=SCHEMA_VERSION))


def check(engine: sa.Engine) -> None:
    """Raise SchemaOutOfDate unless the tables are at least at the version this code needs."""
    with engine.connect() as conn:
        found = installed_version(conn)
    if found < SCHEMA_VERSION:
        raise SchemaOutOfDate(
            f"the fleet's tables are at version {found}, this worker needs {SCHEMA_VERSION}: "
            "run `python -m services.worker migrate`"
        )


def grant(engine: sa.Engine, role: str) -> None:
    """Let an application role (one that may not run DDL) use the fleet's tables."""
    quoted_role = '"' + role.replace('"', '""') + '"'
    with engine.begin() as conn:
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{FLEET_SCHEMA}" TO {quoted_role}'))
        conn.execute(
            sa.text(
                f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "{FLEET_SCHEMA}" '
                f"TO {quoted_role}"
            )
        )
        # The audit log: read and add only; rows go through the owner's expiry function.
        log, policy = f'"{FLEET_SCHEMA}".{audit_log.name}', f'"{FLEET_SCHEMA}".{audit_policy.name}'
        conn.execute(
            sa.text(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {log} FROM {quoted_role}")
        )
        # Every column but the id: an id the role could choose would block the API's next
        # rows (a unique violation), leaving calls without a record.
        columns = ", ".join(c.name for c in audit_log.columns if c.name != "id")
        conn.execute(sa.text(f"GRANT INSERT ({columns}) ON {log} TO {quoted_role}"))
        conn.execute(
            sa.text(f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {policy} FROM {quoted_role}")
        )
        conn.execute(
            sa.text(
                f"GRANT EXECUTE ON FUNCTION {EXPIRE_FUNCTION}(bigint, integer) TO {quoted_role}"
            )
        )


def report(engine: sa.Engine, fleet_found: int) -> None:
    """One line for the schema: DBOS's version and the fleet's (DBOS's own lines, one per
    migration, are at DEBUG: services.contract.logs)."""
    with engine.connect() as conn:
        dbos_version = conn.execute(sa.select(sa.func.max(dbos_migrations.c.version))).scalar()
        fleet_version = installed_version(conn)
    log.info(
        "schema.ready",
        dbos_version=dbos_version,
        fleet_version=fleet_version,
        fleet_version_before=fleet_found,
    )

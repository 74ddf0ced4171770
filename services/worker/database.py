"""The worker's own database access apart from DBOS's pool: engines and advisory locks."""

from typing import Any

import sqlalchemy as sa

from services import contract


def try_lock(conn: sa.Connection, key: int) -> bool:
    """Take a PostgreSQL advisory lock for the transaction, if free: one process at a time
    does each job. SQLite transactions here are IMMEDIATE: writers are already serialized."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(key))).scalar())


def create_engine(
    database_url: str, *, pool_size: int, timeout_seconds: float, name: str = "fleet"
) -> sa.Engine:
    """A small engine for fleet bookkeeping, apart from DBOS's pool, where nothing waits
    longer than `timeout_seconds`: not for a pooled connection, a lock, a statement, or (on
    PostgreSQL) a new connection (libpq counts whole seconds, at least 2) or an
    unacknowledged network write (twice the timeout, at least 1 s)."""
    url = sa.make_url(database_url)
    timeout_ms = max(1, int(timeout_seconds * 1000))
    if url.get_backend_name() == "postgresql":
        # An open transaction of ours is only ever idle between two of our statements (the
        # thread may wait for the GIL under load): give it far more than a statement.
        options = (
            f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} "
            f"-c idle_in_transaction_session_timeout={10 * timeout_ms}"
        )
        return sa.create_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=timeout_seconds,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": max(2, int(timeout_seconds + 0.999)),
                "application_name": f"{contract.APP_NAME}-{name}",
                "options": options,
                # A silent network (a blackholed address after failover): the kernel gives
                # up on unacknowledged data, and idle connections are probed.
                "tcp_user_timeout": max(1000, 2 * timeout_ms),
                "keepalives": 1,
                "keepalives_idle": 5,
                "keepalives_interval": 2,
                "keepalives_count": 3,
            },
        )
    engine = sa.create_engine(
        url, pool_size=pool_size, max_overflow=0, pool_timeout=timeout_seconds
    )

    @sa.event.listens_for(engine, "connect")
    def configure(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute(f"PRAGMA busy_timeout={timeout_ms}")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine

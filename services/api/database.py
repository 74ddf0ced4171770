"""The API's SQLAlchemy engine, shared by the DBOSClient and the project's own read queries."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from services.api.settings import ApiSettings

# A writer waits this long for SQLite's lock before failing (the API must not hang).
SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(settings: ApiSettings) -> sa.Engine:
    """An engine that fails fast when the database is unreachable instead of retrying."""
    url = sa.make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, settings)
    if url.get_backend_name() != "postgresql":
        raise ValueError(
            f"unsupported database {url.get_backend_name()!r}: use postgresql:// or sqlite:///"
        )
    statement_timeout_ms = int(settings.db_statement_timeout_seconds * 1000)
    return sa.create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        # No ping before each use (a round trip on every request): a connection the server
        # dropped fails its request with 503, and SQLAlchemy then replaces every pooled
        # connection made before that failure.
        connect_args={
            "connect_timeout": settings.db_connect_timeout_seconds,
            "application_name": "dbos-queue-worker-api",
            "options": f"-c statement_timeout={statement_timeout_ms}",
        },
    )


def _sqlite_engine(url: sa.URL, settings: ApiSettings) -> sa.Engine:
    engine = sa.create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
    )

    @event.listens_for(engine, "connect")
    def configure(dbapi_conn: Any, _record: Any) -> None:
        # The same settings DBOS applies to its own SQLite engine: serialized writers.
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine


# SQLSTATE classes and codes that mean "not now" rather than "wrong request": connection
# exceptions (08), read-only or idle-timeout transactions during failover (25006, 25P03),
# insufficient resources (53), operator intervention such as shutdown or statement timeout (57),
# and a schema that is not migrated yet (42P01, 3F000).
_UNAVAILABLE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_CODES = ("25006", "25P03", "42P01", "3F000")


def is_unavailable(exc: BaseException) -> bool:
    """True when the error means the database can't serve us right now."""
    if isinstance(exc, sa.exc.TimeoutError):  # no pooled connection in time
        return True
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
            return True
        code = getattr(exc.orig, "sqlstate", None)
        if isinstance(code, str):
            return code[:2] in _UNAVAILABLE_CLASSES or code in _UNAVAILABLE_CODES
    return False

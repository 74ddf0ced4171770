"""Which database errors mean "unavailable, retry" (503) rather than a server bug (500)."""

import psycopg
import pytest
import sqlalchemy as sa

from services.api.database import is_unavailable


def _wrapped(error: Exception, kind: type[sa.exc.DBAPIError] = sa.exc.DBAPIError) -> Exception:
    return kind("SELECT 1", {}, error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(psycopg.OperationalError("connection refused"), sa.exc.OperationalError),
        _wrapped(psycopg.errors.ReadOnlySqlTransaction(), sa.exc.InternalError),
        _wrapped(psycopg.errors.IdleInTransactionSessionTimeout(), sa.exc.InternalError),
        _wrapped(psycopg.errors.QueryCanceled(), sa.exc.OperationalError),
        _wrapped(psycopg.errors.AdminShutdown(), sa.exc.OperationalError),
        _wrapped(psycopg.errors.UndefinedTable(), sa.exc.ProgrammingError),
        _wrapped(psycopg.errors.TooManyConnections(), sa.exc.OperationalError),
        sa.exc.TimeoutError("QueuePool limit reached"),
    ],
    ids=lambda e: type(getattr(e, "orig", e)).__name__,
)
def test_outages_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        _wrapped(psycopg.errors.UniqueViolation(), sa.exc.IntegrityError),
        _wrapped(psycopg.errors.SyntaxError(), sa.exc.ProgrammingError),
        ValueError("not a database error"),
    ],
    ids=lambda e: type(getattr(e, "orig", e)).__name__,
)
def test_bugs_are_not_unavailable(error: Exception) -> None:
    assert not is_unavailable(error)

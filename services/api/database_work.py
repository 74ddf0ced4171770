"""Database work of a request: off the event loop, bounded in time, failures as problems."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request

from services.api.database import is_unavailable
from services.api.db_threads import DatabaseThreads
from services.api.problems import Problem
from services.api.settings import ApiSettings
from services.api.workflows import WorkflowConflict, WorkflowNotFound
from services.contract import logs

log = logs.get_logger(__name__)
T = TypeVar("T")


async def database_work(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """Run blocking database work off the event loop (see bounded)."""
    threads: DatabaseThreads = request.state.db_threads
    return await bounded(request, threads.run(fn, *args))


async def bounded(request: Request, work: Awaitable[T]) -> T:
    """Database work, bounded in time, with its failures mapped to problems.

    Bounded: some waits (SQLite's lock, DBOS's own retries on it) have no limit of their own.
    A request past the deadline answers 503 while its thread finishes on its own, so a
    client that retries should send an Idempotency-Key.
    """
    settings: ApiSettings = request.state.settings
    try:
        with anyio.fail_after(settings.request_timeout_seconds):
            return await work
    except WorkflowNotFound as exc:
        raise Problem(404, "Not Found", f"no workflow has id {exc}") from None
    except WorkflowConflict as exc:
        retry = exc.retry_after_seconds
        headers = None if retry is None else {"Retry-After": str(retry)}
        raise Problem(409, "Conflict", str(exc), headers=headers) from None
    except Exception as exc:
        if not (isinstance(exc, TimeoutError) or is_unavailable(exc)):
            raise
        log.warning("api.database_unavailable", error=type(exc).__name__)
        raise Problem(
            503,
            "Service Unavailable",
            "the database is unavailable or too slow; retry shortly",
            headers={"Retry-After": "1"},
        ) from None

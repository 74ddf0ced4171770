"""Assembles the Starlette application: routes, error handlers and the lifespan's resources."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TypedDict

from dbos import DBOSClient
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from services.api import database
from services.api.audit import AuditEntry, AuditLog
from services.api.auth import Identify
from services.api.credentials import identify_from
from services.api.db_threads import DatabaseThreads
from services.api.enqueue_groups import EnqueueGroups
from services.api.enqueues import Enqueues
from services.api.fleet import Fleet
from services.api.metrics import Metrics, QueueCollector
from services.api.metrics_server import metrics_listener
from services.api.middleware import (
    AccessMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
    UnexpectedErrorMiddleware,
)
from services.api.problems import (
    Problem,
    handle_http_exception,
    handle_problem,
)
from services.api.routes import routes
from services.api.settings import ApiSettings, configure_logs
from services.api.store import Store
from services.api.workflows import Workflows
from services.contract import dbos_tables as tables
from services.contract import logs, tracing
from services.contract import registry as workflow_registry
from services.contract.registry import Registry

log = logs.get_logger(__name__)

# Audit rows per transaction, and transactions in flight at once.
AUDIT_GROUP, AUDIT_WRITERS = 500, 2


class State(TypedDict):
    settings: ApiSettings
    # Who holds a bearer token; None when API_AUTH=none.
    identify: Identify | None
    audit: AuditLog
    # The audit rows of concurrent calls, committed together.
    audit_writes: EnqueueGroups[AuditEntry, None]
    # One thread per pooled database connection (database_work).
    db_threads: DatabaseThreads
    store: Store
    fleet: Fleet
    workflows: Workflows
    enqueues: Enqueues
    metrics: Metrics
    registry: Registry


def create_app(settings: ApiSettings, registry: Registry | None = None) -> Starlette:
    """The application; RegistryError here when the registry (WORKFLOW_REGISTRY) is wrong."""
    metrics = Metrics()
    types = registry if registry is not None else workflow_registry.load()
    identify = identify_from(settings)  # ValueError when a token or keys file is unusable

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        engine = database.create_engine(settings)
        # lazy: the API starts (and /healthz answers) while the database is still down.
        # retry_connection_errors=False: a request fails fast instead of blocking on retries.
        client = DBOSClient(
            system_database_engine=engine,
            dbos_system_schema=tables.DBOS_SCHEMA,
            lazy=True,
            retry_connection_errors=False,
        )
        store, fleet = (
            Store(engine),
            Fleet(engine, sorted(types.queues), settings.application_version),
        )
        grace_ms = int(settings.executor_grace_seconds * 1000)
        metrics.attach(
            QueueCollector(
                fleet, grace_ms, settings.metrics_cache_seconds, metrics.collection_errors
            )
        )
        threads = DatabaseThreads(settings.db_pool_size, settings.db_pool_timeout_seconds)
        workflows = Workflows(client, store, grace_ms, types)
        enqueues = Enqueues(client, store, threads, settings.application_version)
        audit = AuditLog(engine)
        log.info("api.started", database=engine.dialect.name)
        listener: AbstractAsyncContextManager[None] = nullcontext()
        if settings.metrics_port is not None:
            listener = metrics_listener(
                metrics, settings.host, settings.metrics_port, shared=settings.workers > 1
            )
        try:
            async with listener:
                yield {
                    "settings": settings,
                    "identify": identify,
                    "audit": audit,
                    "audit_writes": EnqueueGroups(
                        threads, audit.record_many, AUDIT_GROUP, AUDIT_WRITERS
                    ),
                    "db_threads": threads,
                    "store": store,
                    "fleet": fleet,
                    "workflows": workflows,
                    "enqueues": enqueues,
                    "metrics": metrics,
                    "registry": types,
                }
        finally:
            metrics.detach()
            client.destroy()
            engine.dispose()
            # uvicorn ends the process by its signal after this: no exit handler would.
            tracing.flush()

    middleware = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(RequestIdMiddleware),
        Middleware(AccessMiddleware, metrics=metrics.http),
        Middleware(UnexpectedErrorMiddleware),
    ]
    if tracing.configure("api", settings.application_version):
        from services.api.request_spans import RequestSpanMiddleware

        # Around the access log, whose lines then carry the trace's ids.
        middleware.insert(2, Middleware(RequestSpanMiddleware))
    return Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            Problem: handle_problem,
            HTTPException: handle_http_exception,
        },
    )


def create_app_from_env() -> Starlette:
    """The factory uvicorn imports in each of its processes when API_WORKERS > 1."""
    settings = ApiSettings.from_env()
    configure_logs(settings)
    return create_app(settings)

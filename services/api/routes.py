"""HTTP endpoints (the route table) and the handlers of reads and actions; enqueues are in
services.api.enqueue_handlers. Handlers validate input, then run the blocking database work
in a thread."""

from collections.abc import Mapping
from typing import Final

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.api import (
    audit_handlers,
    enqueue_handlers,
    progress_page,
    request_body,
    schemas,
    views,
)
from services.api.auth import PUBLIC_PATHS, Identify, Role, authorize
from services.api.database_work import database_work
from services.api.fleet import Fleet
from services.api.handling import Handler, bad_request, registry_of, workflows_of
from services.api.listing import PageFilter, PageKey
from services.api.metrics import Metrics
from services.api.openapi import openapi_document
from services.api.problems import Problem
from services.api.schemas import InvalidInput
from services.api.settings import ApiSettings
from services.api.store import Store
from services.contract import logs

log = logs.get_logger(__name__)

SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


async def list_workflows(request: Request) -> Response:
    params = request.query_params
    try:
        limit = schemas.parse_limit(schemas.single_value("limit", params.getlist("limit")))
        only = PageFilter(
            status=schemas.parse_status(schemas.single_value("status", params.getlist("status"))),
            workflows=schemas.parse_types(
                registry_of(request),
                schemas.single_value("workflow", params.getlist("workflow")),
                schemas.single_value("queue", params.getlist("queue")),
            ),
        )
        after = schemas.decode_cursor(schemas.single_value("cursor", params.getlist("cursor")))
    except InvalidInput as exc:
        raise bad_request(exc) from None
    records = await database_work(request, workflows_of(request).list_page, limit, after, only)
    next_cursor = None
    if len(records) == limit:
        last = records[-1]
        next_cursor = schemas.encode_cursor(PageKey(last.created_at_ms, last.workflow_id))
    return JSONResponse(
        {"workflows": [views.workflow_json(r) for r in records], "next_cursor": next_cursor}
    )


async def get_workflow(request: Request) -> Response:
    record = await database_work(
        request, workflows_of(request).get, request.path_params["workflow_id"]
    )
    return JSONResponse(views.workflow_json(record))


async def list_steps(request: Request) -> Response:
    workflow_id = request.path_params["workflow_id"]
    steps = await database_work(request, workflows_of(request).steps, workflow_id)
    return JSONResponse(views.steps_json(workflow_id, steps))


async def cancel_workflow(request: Request) -> Response:
    record = await database_work(
        request, workflows_of(request).cancel, request.path_params["workflow_id"]
    )
    return JSONResponse(views.workflow_json(record), status_code=202)


async def resume_workflow(request: Request) -> Response:
    record = await database_work(
        request, workflows_of(request).resume, request.path_params["workflow_id"]
    )
    return JSONResponse(views.workflow_json(record), status_code=202)


async def list_executors(request: Request) -> Response:
    fleet: Fleet = request.state.fleet
    settings: ApiSettings = request.state.settings
    grace_ms = int(settings.executor_grace_seconds * 1000)
    snapshot = await database_work(request, fleet.snapshot, grace_ms)
    return JSONResponse(views.fleet_json(snapshot, settings.executor_grace_seconds))


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store: Store = request.state.store
    settings: ApiSettings = request.state.settings
    try:
        # abandon_on_cancel: the answer comes within the timeout even if the thread is stuck
        # in a connect; that thread ends on its own connect timeout.
        with anyio.fail_after(settings.readiness_timeout_seconds):
            await anyio.to_thread.run_sync(store.ping, abandon_on_cancel=True)
    except Exception as exc:
        log.warning("api.not_ready", error=type(exc).__name__)
        return JSONResponse(
            {"status": "unavailable", "reason": "database not reachable or not migrated"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    settings: ApiSettings = request.state.settings
    if settings.metrics_port is not None:
        raise Problem(
            404,
            "Not Found",
            f"the metrics are served on their own port ({settings.metrics_port}), not here",
        )
    served: Metrics = request.state.metrics
    payload = await run_in_threadpool(lambda: generate_latest(served.registry()))
    return Response(payload, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def _route(
    path: str,
    handlers: Mapping[str, Handler],
    name: str | None = None,
    audit: str | None = None,
) -> Route:
    """The one route of a path, answering each of its methods with that method's handler.

    One route per path, so a 405's Allow header lists every method the path serves. Every
    request passes here, so the checks that must never be forgotten are made here: who may
    call (with API_AUTH=tokens or jwt, role read for reading and operate for changing, but on the
    PUBLIC_PATHS), the guard of state-changing methods, the rule for a {workflow_id} in the
    path, and the audit log of state-changing calls (`audit`: the action's name).
    """
    public = path in PUBLIC_PATHS

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        identify: Identify | None = request.state.identify
        request.state.identity = None
        if identify is not None and not public:
            needed = Role.READ if method in SAFE_METHODS else Role.OPERATE
            header = request.headers.get("authorization")
            if getattr(identify, "blocking", False):
                # It may fetch the identity provider's keys: never on the event loop.
                request.state.identity = await anyio.to_thread.run_sync(
                    authorize, header, needed, identify
                )
            else:
                request.state.identity = authorize(header, needed, identify)
        if method not in SAFE_METHODS:
            request_body.guard_state_change(request)
        if "workflow_id" in request.path_params:
            try:
                schemas.parse_workflow_id(request.path_params["workflow_id"])
            except InvalidInput as exc:
                raise bad_request(exc) from None
        if audit is not None and method not in SAFE_METHODS:
            response = await audit_handlers.audited(request, audit, handlers[method])
        else:
            response = await handlers[method](request)
        return response

    if name is None:
        (handler,) = handlers.values()  # a path of several methods is named by the caller
        name = getattr(handler, "__name__", path)
    return Route(path, endpoint, methods=list(handlers), name=name)


routes = [
    _route("/", {"GET": progress_page.index}),
    _route("/static/{name}", {"GET": progress_page.static_file}),
    _route(
        "/workflows",
        {"GET": list_workflows, "POST": enqueue_handlers.enqueue_workflow},
        name="workflows",
        audit="enqueue",
    ),
    _route("/workflows:batch", {"POST": enqueue_handlers.enqueue_batch}, audit="enqueue_batch"),
    _route("/workflows/{workflow_id}", {"GET": get_workflow}),
    _route("/workflow-types", {"GET": enqueue_handlers.list_workflow_types}),
    _route("/workflows/{workflow_id}/steps", {"GET": list_steps}),
    _route("/workflows/{workflow_id}/cancel", {"POST": cancel_workflow}, audit="cancel"),
    _route("/workflows/{workflow_id}/resume", {"POST": resume_workflow}, audit="resume"),
    _route("/audit", {"GET": audit_handlers.list_audit}),
    _route("/executors", {"GET": list_executors}),
    _route("/healthz", {"GET": healthz}),
    _route("/readyz", {"GET": readyz}),
    _route("/metrics", {"GET": metrics}),
    _route("/openapi.json", {"GET": openapi}),
]

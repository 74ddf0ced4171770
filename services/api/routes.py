"""HTTP endpoints. Handlers validate input, then run the blocking database work in a thread."""

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import quote

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.api import enqueue_input, progress_page, request_body, schemas, views
from services.api.database_work import bounded, database_work
from services.api.enqueue_input import Enqueue, EnqueueRequest, InvalidEnqueue
from services.api.fleet import Fleet
from services.api.listing import PageFilter, PageKey
from services.api.metrics import Metrics
from services.api.openapi import openapi_document
from services.api.problems import Problem
from services.api.schemas import InvalidInput
from services.api.settings import ApiSettings
from services.api.store import Store
from services.api.workflows import BatchConflict, Workflows
from services.contract.registry import Registry

logger = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]

SAFE_METHODS: Final = frozenset({"GET", "HEAD"})
# A path segment that needs no percent-encoding (every id the API makes is one).
URL_SAFE: Final = re.compile(r"[A-Za-z0-9._~-]+")


def _bad_request(exc: InvalidInput) -> Problem:
    return Problem(400, "Bad Request", str(exc))


def _workflows(request: Request) -> Workflows:
    workflows: Workflows = request.state.workflows
    return workflows


def _registry(request: Request) -> Registry:
    registry: Registry = request.state.registry
    return registry


def _resolve(request: Request, body: EnqueueRequest, prefix: str = "") -> Enqueue:
    try:
        return enqueue_input.resolve(body, _registry(request), prefix)
    except InvalidEnqueue as exc:
        raise request_body.unprocessable(exc.errors) from None


async def enqueue_workflow(request: Request) -> Response:
    body = await request_body.read_json_body(request)
    enqueue = _resolve(
        request,
        request_body.parse_json(body, EnqueueRequest) if body.strip() else EnqueueRequest(),
    )
    key = request.headers.get("idempotency-key")
    try:
        keyed_id = None if key is None else schemas.idempotency_workflow_id(key)
    except InvalidInput as exc:
        raise _bad_request(exc) from None
    workflow_id, replayed = await bounded(request, _workflows(request).enqueue(enqueue, keyed_id))
    location = _workflow_path(request, workflow_id)
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        {"workflow_id": workflow_id, "url": location}, status_code=202, headers=headers
    )


async def enqueue_batch(request: Request) -> Response:
    batch = request_body.parse_json(
        await request_body.read_json_body(request, schemas.MAX_BATCH_BODY_BYTES),
        enqueue_input.BatchRequest,
    )
    errors: list[dict[str, str]] = []
    items: list[tuple[Enqueue, str | None]] = []
    for index, item in enumerate(batch.workflows):
        try:
            enqueue = enqueue_input.resolve(item, _registry(request), f"workflows.{index}.")
        except InvalidEnqueue as exc:
            errors.extend(exc.errors)
            continue
        key = item.idempotency_key
        items.append((enqueue, None if key is None else schemas.idempotency_workflow_id(key)))
    errors.extend(enqueue_input.repeated_in_batch(batch.workflows, [e for e, _ in items]))
    if errors:
        raise request_body.unprocessable(errors[: enqueue_input.MAX_LISTED_ERRORS])
    try:
        enqueued = await database_work(request, _workflows(request).enqueue_batch, items)
    except BatchConflict as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    return JSONResponse(
        {
            "workflows": [
                {
                    "workflow_id": workflow_id,
                    "url": _workflow_path(request, workflow_id),
                    "replayed": replayed,
                }
                for workflow_id, replayed in enqueued
            ]
        },
        status_code=202,
    )


async def list_workflow_types(request: Request) -> Response:
    return JSONResponse(views.registry_json(_registry(request)))


def _workflow_path(request: Request, workflow_id: str) -> str:
    """Where a workflow is read (the URL path of get_workflow, under the app's root path)."""
    if not URL_SAFE.fullmatch(workflow_id):
        workflow_id = quote(workflow_id, safe="")
    return f"{request.scope.get('root_path', '')}/workflows/{workflow_id}"


async def list_workflows(request: Request) -> Response:
    params = request.query_params
    try:
        limit = schemas.parse_limit(schemas.single_value("limit", params.getlist("limit")))
        only = PageFilter(
            status=schemas.parse_status(schemas.single_value("status", params.getlist("status"))),
            workflows=schemas.parse_types(
                _registry(request),
                schemas.single_value("workflow", params.getlist("workflow")),
                schemas.single_value("queue", params.getlist("queue")),
            ),
        )
        after = schemas.decode_cursor(schemas.single_value("cursor", params.getlist("cursor")))
    except InvalidInput as exc:
        raise _bad_request(exc) from None
    records = await database_work(request, _workflows(request).list_page, limit, after, only)
    next_cursor = None
    if len(records) == limit:
        last = records[-1]
        next_cursor = schemas.encode_cursor(PageKey(last.created_at_ms, last.workflow_id))
    return JSONResponse(
        {"workflows": [views.workflow_json(r) for r in records], "next_cursor": next_cursor}
    )


async def get_workflow(request: Request) -> Response:
    record = await database_work(
        request, _workflows(request).get, request.path_params["workflow_id"]
    )
    return JSONResponse(views.workflow_json(record))


async def list_steps(request: Request) -> Response:
    workflow_id = request.path_params["workflow_id"]
    steps = await database_work(request, _workflows(request).steps, workflow_id)
    return JSONResponse(views.steps_json(workflow_id, steps))


async def cancel_workflow(request: Request) -> Response:
    record = await database_work(
        request, _workflows(request).cancel, request.path_params["workflow_id"]
    )
    return JSONResponse(views.workflow_json(record), status_code=202)


async def resume_workflow(request: Request) -> Response:
    record = await database_work(
        request, _workflows(request).resume, request.path_params["workflow_id"]
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
        logger.warning("api.not_ready error=%s", type(exc).__name__)
        return JSONResponse(
            {"status": "unavailable", "reason": "database not reachable or not migrated"},
            status_code=503,
        )
    return JSONResponse({"status": "ok"})


async def metrics(request: Request) -> Response:
    served: Metrics = request.state.metrics
    payload = await run_in_threadpool(lambda: generate_latest(served.registry()))
    return Response(payload, media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


def _route(path: str, handlers: Mapping[str, Handler], name: str | None = None) -> Route:
    """The one route of a path, answering each of its methods with that method's handler.

    One route per path, so a 405's Allow header lists every method the path serves. Every
    request passes here, so the checks that must never be forgotten are made here: the guard
    of state-changing methods, and the rule for a {workflow_id} in the path.
    """

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        if method not in SAFE_METHODS:
            request_body.guard_state_change(request)
        if "workflow_id" in request.path_params:
            try:
                schemas.parse_workflow_id(request.path_params["workflow_id"])
            except InvalidInput as exc:
                raise _bad_request(exc) from None
        return await handlers[method](request)

    if name is None:
        (handler,) = handlers.values()  # a path of several methods is named by the caller
        name = getattr(handler, "__name__", path)
    return Route(path, endpoint, methods=list(handlers), name=name)


routes = [
    _route("/", {"GET": progress_page.index}),
    _route("/static/{name}", {"GET": progress_page.static_file}),
    _route("/workflows", {"GET": list_workflows, "POST": enqueue_workflow}, name="workflows"),
    _route("/workflows:batch", {"POST": enqueue_batch}),
    _route("/workflows/{workflow_id}", {"GET": get_workflow}),
    _route("/workflow-types", {"GET": list_workflow_types}),
    _route("/workflows/{workflow_id}/steps", {"GET": list_steps}),
    _route("/workflows/{workflow_id}/cancel", {"POST": cancel_workflow}),
    _route("/workflows/{workflow_id}/resume", {"POST": resume_workflow}),
    _route("/executors", {"GET": list_executors}),
    _route("/healthz", {"GET": healthz}),
    _route("/readyz", {"GET": readyz}),
    _route("/metrics", {"GET": metrics}),
    _route("/openapi.json", {"GET": openapi}),
]

"""Enqueue endpoints: one workflow, a batch, and the registry of types they take."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.api import audit_handlers, enqueue_bodies, enqueue_input, request_body, schemas, views
from services.api.database_work import bounded, database_work
from services.api.enqueue_bodies import EnqueueRequest
from services.api.enqueue_input import Enqueue, InvalidEnqueue
from services.api.enqueues import BatchConflict, Origin
from services.api.handling import bad_request, enqueues_of, registry_of, workflow_path
from services.api.problems import Problem
from services.api.schemas import InvalidInput


def _resolve(request: Request, body: EnqueueRequest, prefix: str = "") -> Enqueue:
    try:
        return enqueue_input.resolve(body, registry_of(request), prefix)
    except InvalidEnqueue as exc:
        raise request_body.unprocessable(exc.errors) from None


def _origin(request: Request) -> Origin:
    # The audit row goes in with the workflows, in one transaction (202: the answer it gets).
    return Origin(
        caller=request.state.identity,
        request_id=request.state.request_id,
        audit_entry=audit_handlers.entry(request, 202),
    )


async def enqueue_workflow(request: Request) -> Response:
    request_body.require_json(request)
    body = await request_body.read_json_body(request)
    enqueue = _resolve(
        request,
        request_body.parse_json(body, EnqueueRequest) if body.strip() else EnqueueRequest(),
    )
    key = request.headers.get("idempotency-key")
    try:
        keyed_id = None if key is None else schemas.idempotency_workflow_id(key)
    except InvalidInput as exc:
        raise bad_request(exc) from None
    request.state.audit_detail = {"workflow": enqueue.workflow}
    origin = _origin(request)
    workflow_id, replayed = await bounded(
        request, enqueues_of(request).enqueue(enqueue, keyed_id, origin)
    )
    location = workflow_path(request, workflow_id)
    headers = {"Location": location}
    request.state.audit_target = workflow_id
    request.state.audit_recorded = not replayed and origin.audit_entry is not None
    if replayed:
        headers["Idempotent-Replayed"] = "true"
        request.state.audit_replayed = True  # it changed nothing: recorded the first time
    return JSONResponse(
        {"workflow_id": workflow_id, "url": location}, status_code=202, headers=headers
    )


async def enqueue_batch(request: Request) -> Response:
    request_body.require_json(request)
    batch = request_body.parse_json(
        await request_body.read_json_body(request, schemas.MAX_BATCH_BODY_BYTES),
        enqueue_bodies.BatchRequest,
    )
    errors: list[dict[str, str]] = []
    items: list[tuple[Enqueue, str | None]] = []
    for index, item in enumerate(batch.workflows):
        try:
            enqueue = enqueue_input.resolve(item, registry_of(request), f"workflows.{index}.")
        except InvalidEnqueue as exc:
            errors.extend(exc.errors)
            continue
        key = item.idempotency_key
        items.append((enqueue, None if key is None else schemas.idempotency_workflow_id(key)))
    errors.extend(enqueue_input.repeated_in_batch(batch.workflows, [e for e, _ in items]))
    if errors:
        raise request_body.unprocessable(errors[: enqueue_input.MAX_LISTED_ERRORS])
    origin = _origin(request)
    try:
        enqueued = await database_work(request, enqueues_of(request).enqueue_batch, items, origin)
    except BatchConflict as exc:
        raise Problem(409, "Conflict", str(exc)) from None
    created = [workflow_id for workflow_id, replayed in enqueued if not replayed]
    request.state.audit_detail = {"workflows": created}
    request.state.audit_replayed = not created
    request.state.audit_recorded = bool(created) and origin.audit_entry is not None
    return JSONResponse(
        {
            "workflows": [
                {
                    "workflow_id": workflow_id,
                    "url": workflow_path(request, workflow_id),
                    "replayed": replayed,
                }
                for workflow_id, replayed in enqueued
            ]
        },
        status_code=202,
    )


async def list_workflow_types(request: Request) -> Response:
    return JSONResponse(views.registry_json(registry_of(request)))

"""The audit log's endpoint and the wrapper that records every state-changing call (see
services.api.audit for what is recorded and when)."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from services.api import schemas, views
from services.api.audit import ANONYMOUS, AuditEntry, AuditLog
from services.api.auth import Identity
from services.api.database_work import bounded, database_work
from services.api.handling import Handler, bad_request
from services.api.problems import Problem
from services.api.schemas import InvalidInput
from services.contract import logs

log = logs.get_logger(__name__)


async def list_audit(request: Request) -> Response:
    params = request.query_params
    try:
        limit = schemas.parse_limit(schemas.single_value("limit", params.getlist("limit")))
        cursor = schemas.single_value("cursor", params.getlist("cursor"))
        if cursor is not None and not (cursor.isascii() and cursor.isdigit() and len(cursor) < 19):
            raise InvalidInput("cursor must be the next_cursor of a previous page")
    except InvalidInput as exc:
        raise bad_request(exc) from None
    log: AuditLog = request.state.audit
    rows = await database_work(request, log.page, limit, None if cursor is None else int(cursor))
    return JSONResponse(
        {
            "entries": [views.audit_json(row) for row in rows],
            "next_cursor": str(rows[-1]["id"]) if len(rows) == limit else None,
        }
    )


def entry(request: Request, outcome: int) -> AuditEntry | None:
    """This call's audit row with its answer's status, or None when the call is not audited.
    The target is the path's workflow unless the handler named one (request.state)."""
    state = request.state
    action: str | None = getattr(state, "audit_action", None)
    if action is None:
        return None
    identity: Identity | None = state.identity
    return AuditEntry(
        actor=identity.name if identity is not None else ANONYMOUS,
        roles=identity.roles if identity is not None else [],
        action=action,
        target=getattr(state, "audit_target", None) or request.path_params.get("workflow_id"),
        outcome=outcome,
        request_id=state.request_id,
        detail=getattr(state, "audit_detail", None),
    )


async def _record(request: Request, outcome: int) -> None:
    """Write the audit row of this call; a failure is logged, never answered."""
    state = request.state
    entry_ = entry(request, outcome)
    assert entry_ is not None  # audited() named the action
    try:
        await bounded(request, state.audit_writes.submit(entry_))
    except Problem as problem:
        # Past its deadline: taken into a write already, the row may still land.
        log.error(
            "audit.write_unconfirmed" if problem.status == 503 else "audit.write_failed",
            action=entry_.action,
            outcome=outcome,
            error=problem.title,
        )
    except Exception as exc:
        log.error(
            "audit.write_failed",
            action=entry_.action,
            outcome=outcome,
            error=type(exc).__name__,
        )


async def audited(request: Request, action: str, handler: Handler) -> Response:
    """The handler's answer, recorded in the audit log once known (see services.api.audit),
    unless the handler wrote its row with its work (request.state.audit_recorded)."""
    request.state.audit_action = action
    try:
        response = await handler(request)
    except Problem as problem:
        await _record(request, problem.status)
        raise
    except Exception:
        await _record(request, 500)
        raise
    if getattr(request.state, "audit_recorded", False):
        return response
    target = getattr(request.state, "audit_target", None)
    if getattr(request.state, "audit_replayed", False):
        # Recorded already, unless the call it repeats ended without a record of it done.
        log: AuditLog = request.state.audit
        try:
            # A batch replayed whole names no workflow of its own: nothing new to record.
            done = target is None or await database_work(request, log.recorded, target, action)
        except Exception:
            done = False
        if done:
            return response
    await _record(request, response.status_code)
    return response

"""What every handler reads from its request: the lifespan's resources, and the URL of a
workflow."""

import re
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from services.api.enqueues import Enqueues
from services.api.problems import Problem
from services.api.schemas import InvalidInput
from services.api.workflows import Workflows
from services.contract.registry import Registry

# A path segment that needs no percent-encoding (every id the API makes is one).
URL_SAFE: Final = re.compile(r"[A-Za-z0-9._~-]+")

# An endpoint's handler of one method.
Handler = Callable[[Request], Awaitable[Response]]


def bad_request(exc: InvalidInput) -> Problem:
    return Problem(400, "Bad Request", str(exc))


def workflows_of(request: Request) -> Workflows:
    workflows: Workflows = request.state.workflows
    return workflows


def enqueues_of(request: Request) -> Enqueues:
    enqueues: Enqueues = request.state.enqueues
    return enqueues


def registry_of(request: Request) -> Registry:
    registry: Registry = request.state.registry
    return registry


def workflow_path(request: Request, workflow_id: str) -> str:
    """Where a workflow is read (the URL path of get_workflow, under the app's root path)."""
    if not URL_SAFE.fullmatch(workflow_id):
        workflow_id = quote(workflow_id, safe="")
    return f"{request.scope.get('root_path', '')}/workflows/{workflow_id}"

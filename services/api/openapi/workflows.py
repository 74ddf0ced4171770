"""The OpenAPI document's paths of workflows: enqueue (one or a batch), list, read, act."""

from typing import Any

from services.api import schemas
from services.api.openapi.enqueue import batch_operation, enqueue_operation
from services.api.openapi.parts import (
    BAD_ID,
    ID_PARAM,
    NOT_FOUND,
    RESUME_CONFLICT,
    UNAVAILABLE,
    WORKFLOW,
    json_response,
    problem_response,
    workflow_action,
)
from services.contract.registry import NAME_PATTERN

STEP = {
    "type": "object",
    "required": [
        "step_id",
        "name",
        "status",
        "started_at",
        "completed_at",
        "error",
        "child_workflow_id",
    ],
    "properties": {
        "step_id": {"type": "integer", "description": "DBOS's function id: the step's order"},
        "name": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["RUNNING", "SUCCESS", "ERROR"],
            "description": "DBOS records an operation once completed (the step in progress is "
            "not listed); RUNNING is a sleep before its wake time",
        },
        "started_at": {"type": ["string", "null"], "format": "date-time"},
        "completed_at": {"type": ["string", "null"], "format": "date-time"},
        "error": {
            "type": ["object", "null"],
            "description": "Shown when stored as portable JSON; otherwise only named",
            "required": ["name", "message"],
            "properties": {
                "name": {"type": ["string", "null"]},
                "message": {"type": "string"},
            },
        },
        "child_workflow_id": {"type": ["string", "null"]},
    },
}


def _name_filter(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": "string", "pattern": NAME_PATTERN},
    }


def workflow_paths() -> dict[str, Any]:
    return {
        "/workflows": {
            "post": enqueue_operation(),
            "get": {
                "summary": "List workflows, newest first",
                "operationId": "listWorkflows",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": schemas.MAX_PAGE_LIMIT,
                            "default": schemas.DEFAULT_PAGE_LIMIT,
                        },
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(schemas.STATUSES)},
                    },
                    _name_filter("workflow", "Only workflows of this type"),
                    _name_filter("queue", "Only workflows on this queue"),
                ],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["workflows", "next_cursor"],
                            "properties": {
                                "workflows": {"type": "array", "items": WORKFLOW},
                                "next_cursor": {"type": ["string", "null"]},
                            },
                        },
                        "One page; pass next_cursor back as cursor for the next one",
                    ),
                    "400": problem_response(
                        "Bad limit, status, workflow, queue or cursor, or one given twice"
                    ),
                    "503": UNAVAILABLE,
                },
            },
        },
        "/workflows:batch": {"post": batch_operation()},
        "/workflows/{workflow_id}": {
            "get": {
                "summary": "One workflow with its progress",
                "operationId": "getWorkflow",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": json_response(WORKFLOW, "The workflow"),
                    "400": BAD_ID,
                    "404": NOT_FOUND,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/workflows/{workflow_id}/steps": {
            "get": {
                "summary": "A workflow's steps in order, with their times and errors",
                "operationId": "listWorkflowSteps",
                "parameters": [ID_PARAM],
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["workflow_id", "steps"],
                            "properties": {
                                "workflow_id": {"type": "string"},
                                "steps": {"type": "array", "items": STEP},
                            },
                        },
                        "The steps recorded so far (DBOS's operation outputs)",
                    ),
                    "400": BAD_ID,
                    "404": NOT_FOUND,
                    "503": UNAVAILABLE,
                },
            }
        },
        "/workflows/{workflow_id}/cancel": workflow_action("Cancel a workflow", "cancelWorkflow"),
        "/workflows/{workflow_id}/resume": workflow_action(
            "Resume a cancelled workflow on its queue",
            "resumeWorkflow",
            RESUME_CONFLICT,
        ),
    }

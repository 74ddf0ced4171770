"""The OpenAPI 3.1 document of the HTTP API."""

from functools import cache
from typing import Any

from pydantic import BaseModel

from services.api import schemas

_PROBLEM = {"$ref": "#/components/schemas/Problem"}
_WORKFLOW = {"$ref": "#/components/schemas/Workflow"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _PROBLEM}},
    }


_ID_PARAM = {
    "name": "workflow_id",
    "in": "path",
    "required": True,
    "description": schemas.WORKFLOW_ID_RULE,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": schemas.MAX_WORKFLOW_ID_LENGTH,
        "pattern": "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
    },
}
_UNAVAILABLE = _problem("The database is unavailable; retry after the Retry-After delay")
_NOT_FOUND = _problem("No workflow has this id")
_CONFLICT = _problem("The workflow's status does not allow this")
_RESUME_CONFLICT = {
    **_problem(
        "Not CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED; or, with Retry-After, its cancelled "
        "execution may still be inside a step: retry after the delay"
    ),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}
_BAD_ID = _problem("The workflow id breaks the rule for workflow ids")
_CROSS_SITE = _problem("Sent by a browser from a page of another site (Sec-Fetch-Site: cross-site)")
_NOT_JSON = _problem("A Content-Type other than application/json, even with an empty body")


def _model_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema and those of the models it holds, as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    held: dict[str, Any] = schema.pop("$defs", {})
    return {model.__name__: schema, **held}


def _workflow_action(
    summary: str, operation_id: str, conflict: dict[str, Any] = _CONFLICT
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": operation_id,
            "parameters": [_ID_PARAM],
            "responses": {
                "202": _json(_WORKFLOW, "The workflow after the request"),
                "400": _BAD_ID,
                "403": _CROSS_SITE,
                "404": _NOT_FOUND,
                "409": conflict,
                "415": _NOT_JSON,
                "503": _UNAVAILABLE,
            },
        }
    }


@cache
def openapi_document() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"]}
    workflow_schema = {
        "type": "object",
        "required": ["workflow_id", "status", "created_at", "steps_completed", "num_steps"],
        "properties": {
            "workflow_id": {"type": "string"},
            "status": {"type": "string", "enum": list(schemas.STATUSES)},
            "queue": {"type": ["string", "null"]},
            "priority": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "steps_completed": {"type": "integer"},
            "num_steps": nullable_int,
            "executor_id": {"type": ["string", "null"]},
            "application_version": {"type": ["string", "null"]},
        },
    }
    problem_schema = {
        "type": "object",
        "required": ["title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object"}},
        },
    }
    status_doc = _json({"type": "object"}, "Status")
    return {
        "openapi": "3.1.0",
        "info": {"title": "dbos-queue-worker API", "version": "1"},
        "paths": {
            "/workflows": {
                "post": {
                    "summary": "Enqueue a workflow",
                    "operationId": "enqueueWorkflow",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": "Retrying with the same key returns the same workflow.",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": schemas.MAX_IDEMPOTENCY_KEY_LENGTH,
                                "pattern": "^[!-~]+$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/EnqueueRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["workflow_id", "url"],
                                "properties": {
                                    "workflow_id": {"type": "string"},
                                    "url": {"type": "string"},
                                },
                            },
                            "Enqueued (or, for a repeated Idempotency-Key, enqueued before)",
                        ),
                        "400": _problem("Malformed Idempotency-Key"),
                        "403": _CROSS_SITE,
                        "409": _problem("Idempotency-Key already used for another request"),
                        "413": _problem("Body too large"),
                        "415": _NOT_JSON,
                        "422": _problem("Body is not a valid enqueue request"),
                        "503": _UNAVAILABLE,
                    },
                },
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
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["workflows", "next_cursor"],
                                "properties": {
                                    "workflows": {"type": "array", "items": _WORKFLOW},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "One page; pass next_cursor back as cursor for the next one",
                        ),
                        "400": _problem("Bad limit, status or cursor, or one given twice"),
                        "503": _UNAVAILABLE,
                    },
                },
            },
            "/workflows:batch": {
                "post": {
                    "summary": f"Enqueue up to {schemas.MAX_BATCH_SIZE} workflows, all or none",
                    "operationId": "enqueueWorkflows",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/BatchRequest"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {
                                "type": "object",
                                "required": ["workflows"],
                                "properties": {
                                    "workflows": {
                                        "type": "array",
                                        "description": "One per item, in the items' order",
                                        "items": {
                                            "type": "object",
                                            "required": ["workflow_id", "url", "replayed"],
                                            "properties": {
                                                "workflow_id": {"type": "string"},
                                                "url": {"type": "string"},
                                                "replayed": {
                                                    "type": "boolean",
                                                    "description": "Enqueued before, by an "
                                                    "earlier request with the item's key",
                                                },
                                            },
                                        },
                                    }
                                },
                            },
                            "All enqueued in one transaction",
                        ),
                        "400": _problem("Body is not JSON"),
                        "403": _CROSS_SITE,
                        "409": _problem(
                            "An item's idempotency_key was used for another request; "
                            "nothing was enqueued"
                        ),
                        "413": _problem("Body too large"),
                        "415": _NOT_JSON,
                        "422": _problem(
                            "Not a valid batch (the errors name each field); nothing was enqueued"
                        ),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/workflows/{workflow_id}": {
                "get": {
                    "summary": "One workflow with its progress",
                    "operationId": "getWorkflow",
                    "parameters": [_ID_PARAM],
                    "responses": {
                        "200": _json(_WORKFLOW, "The workflow"),
                        "400": _BAD_ID,
                        "404": _NOT_FOUND,
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/workflows/{workflow_id}/cancel": _workflow_action(
                "Cancel a workflow", "cancelWorkflow"
            ),
            "/workflows/{workflow_id}/resume": _workflow_action(
                "Resume a cancelled workflow on its queue",
                "resumeWorkflow",
                _RESUME_CONFLICT,
            ),
            "/": {
                "get": {
                    "summary": "A page listing workflows with progress bars, and an Enqueue button",
                    "operationId": "progressPage",
                    "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}},
                }
            },
            "/static/{name}": {
                "get": {
                    "summary": "The page's script and style sheet",
                    "operationId": "staticFile",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The file"},
                        "404": _problem("No such file"),
                    },
                }
            },
            "/executors": {
                "get": {
                    "summary": "Workers, their liveness, and work no live worker will run",
                    "operationId": "listExecutors",
                    "responses": {"200": status_doc, "503": _UNAVAILABLE},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Process is alive",
                    "operationId": "healthz",
                    "responses": {"200": status_doc},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Database reachable",
                    "operationId": "readyz",
                    "responses": {"200": status_doc, "503": status_doc},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": status_doc},
                }
            },
        },
        "components": {
            "schemas": {
                "EnqueueRequest": schemas.EnqueueRequest.model_json_schema(),
                **_model_schemas(schemas.BatchRequest),
                "Workflow": workflow_schema,
                "Problem": problem_schema,
            }
        },
    }

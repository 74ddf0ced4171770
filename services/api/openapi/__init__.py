"""The OpenAPI 3.1 document of the HTTP API."""

from functools import cache
from typing import Any

from services.api import enqueue_bodies, schemas
from services.api.auth import PUBLIC_PATHS
from services.api.openapi.parts import UNAVAILABLE, json_response, model_schemas, problem_response
from services.api.openapi.workflows import workflow_paths


@cache
def openapi_document() -> dict[str, Any]:
    document = _document()
    # With API_AUTH=tokens every other operation needs a bearer token: role read to read,
    # operate to change anything.
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path in PUBLIC_PATHS:
                operation["security"] = []
                continue
            operation["security"] = [{"bearerAuth": []}]
            responses = operation["responses"]
            responses["401"] = problem_response(
                "No bearer token, or one that is not valid (API_AUTH=tokens or jwt)"
            )
            responses.setdefault(
                "400", problem_response("A malformed request, or Authorization header")
            )
            if method != "get":
                responses["403"] = problem_response("The token's role is read; this needs operate")
    return document


def _document() -> dict[str, Any]:
    nullable_int = {"type": ["integer", "null"]}
    workflow_schema = {
        "type": "object",
        "required": ["workflow_id", "status", "created_at", "steps_completed", "num_steps"],
        "properties": {
            "workflow_id": {"type": "string"},
            "workflow": {"type": ["string", "null"], "description": "Its type"},
            "status": {"type": "string", "enum": list(schemas.STATUSES)},
            "queue": {"type": ["string", "null"]},
            "partition_key": {"type": ["string", "null"]},
            "priority": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "steps_completed": {"type": "integer"},
            "num_steps": nullable_int,
            "executor_id": {"type": ["string", "null"]},
            "application_version": {"type": ["string", "null"]},
        },
    }
    workflow_type = {
        "type": "object",
        "required": ["name", "queue", "partitioned", "input_schema", "defaults"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "queue": {"type": "string"},
            "partitioned": {
                "type": "boolean",
                "description": "Its queue is partitioned: an enqueue needs a partition_key",
            },
            "input_schema": {"type": "object", "description": "JSON Schema of its input"},
            "defaults": {"type": "object"},
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
    status_doc = json_response({"type": "object"}, "Status")
    return {
        "openapi": "3.1.0",
        "info": {"title": "dbos-queue-worker API", "version": "1"},
        "paths": {
            **workflow_paths(),
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
                        "404": problem_response("No such file"),
                    },
                }
            },
            "/audit": {
                "get": {
                    "summary": "The audit log, newest first: every state-changing call that got "
                    "past authorization (enqueue, enqueue_batch, cancel, resume), with its actor, "
                    "roles, target, outcome (the answer's status) and request id",
                    "operationId": "listAudit",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500},
                        },
                        {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                    ],
                    "responses": {
                        "200": json_response(
                            {
                                "type": "object",
                                "required": ["entries", "next_cursor"],
                                "properties": {
                                    "entries": {"type": "array", "items": {"type": "object"}},
                                    "next_cursor": {"type": ["string", "null"]},
                                },
                            },
                            "A page of entries",
                        ),
                        "400": problem_response("A bad limit or cursor"),
                        "503": UNAVAILABLE,
                    },
                }
            },
            "/executors": {
                "get": {
                    "summary": "Workers, their liveness, and work no live worker will run",
                    "operationId": "listExecutors",
                    "responses": {"200": status_doc, "503": UNAVAILABLE},
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
            "/workflow-types": {
                "get": {
                    "summary": "The workflow types (with their input schemas) and queues",
                    "operationId": "listWorkflowTypes",
                    "responses": {
                        "200": json_response(
                            {
                                "type": "object",
                                "required": ["default_workflow", "workflow_types", "queues"],
                                "properties": {
                                    "default_workflow": {"type": "string"},
                                    "workflow_types": {"type": "array", "items": workflow_type},
                                    "queues": {"type": "array", "items": {"type": "object"}},
                                },
                            },
                            "The registry: what POST /workflows accepts",
                        )
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
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "With API_AUTH=tokens: a token of role read (reads) or "
                    "operate (also enqueue, cancel, resume). Without, anyone may call.",
                }
            },
            "schemas": {
                "EnqueueRequest": enqueue_bodies.EnqueueRequest.model_json_schema(),
                **model_schemas(enqueue_bodies.BatchRequest),
                "Workflow": workflow_schema,
                "Problem": problem_schema,
            },
        },
    }

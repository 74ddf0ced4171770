"""The OpenAPI document's enqueue operations: POST /workflows and POST /workflows:batch."""

from typing import Any

from services.api import enqueue_bodies, schemas
from services.api.openapi.parts import (
    CROSS_SITE,
    NOT_JSON,
    UNAVAILABLE,
    json_response,
    problem_response,
)


def enqueue_operation() -> dict[str, Any]:
    return {
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
                "application/json": {"schema": {"$ref": "#/components/schemas/EnqueueRequest"}}
            },
        },
        "responses": {
            "202": json_response(
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
            "400": problem_response("Malformed Idempotency-Key"),
            "403": CROSS_SITE,
            "409": problem_response(
                "Idempotency-Key already used for another request, or the "
                "deduplication_id is held by a queued or running workflow"
            ),
            "413": problem_response("Body too large"),
            "415": NOT_JSON,
            "422": problem_response(
                "Not a valid enqueue request: an unknown type, input its schema "
                "refuses, an option its queue does not take (the errors name each field)"
            ),
            "503": UNAVAILABLE,
        },
    }


def batch_operation() -> dict[str, Any]:
    return {
        "summary": f"Enqueue up to {enqueue_bodies.MAX_BATCH_SIZE} workflows, all or none",
        "operationId": "enqueueWorkflows",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}}
            },
        },
        "responses": {
            "202": json_response(
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
            "400": problem_response("Body is not JSON"),
            "403": CROSS_SITE,
            "409": problem_response(
                "An item's idempotency_key was used for another request, or its "
                "deduplication_id is held; nothing was enqueued"
            ),
            "413": problem_response("Body too large"),
            "415": NOT_JSON,
            "422": problem_response(
                "Not a valid batch (the errors name each field); nothing was enqueued"
            ),
            "503": UNAVAILABLE,
        },
    }

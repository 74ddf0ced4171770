"""The pieces the OpenAPI document is built of: shared responses, parameters and references."""

from typing import Any

from pydantic import BaseModel

from services.api import schemas

PROBLEM = {"$ref": "#/components/schemas/Problem"}
WORKFLOW = {"$ref": "#/components/schemas/Workflow"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM}},
    }


ID_PARAM = {
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
UNAVAILABLE = problem_response("The database is unavailable; retry after the Retry-After delay")
NOT_FOUND = problem_response("No workflow has this id")
CONFLICT = problem_response("The workflow's status does not allow this")
RESUME_CONFLICT = {
    **problem_response(
        "Not CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED; or, with Retry-After, its cancelled "
        "execution may still be inside a step: retry after the delay"
    ),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}
BAD_ID = problem_response("The workflow id breaks the rule for workflow ids")
CROSS_SITE = problem_response(
    "Sent by a browser from a page of another site (Sec-Fetch-Site: cross-site)"
)
NOT_JSON = problem_response("A Content-Type other than application/json, even with an empty body")


def model_schemas(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema and those of the models it holds, as components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    held: dict[str, Any] = schema.pop("$defs", {})
    return {model.__name__: schema, **held}


def workflow_action(
    summary: str, operation_id: str, conflict: dict[str, Any] = CONFLICT
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "operationId": operation_id,
            "parameters": [ID_PARAM],
            "responses": {
                "202": json_response(WORKFLOW, "The workflow after the request"),
                "400": BAD_ID,
                "403": CROSS_SITE,
                "404": NOT_FOUND,
                "409": conflict,
                "415": NOT_JSON,
                "503": UNAVAILABLE,
            },
        }
    }

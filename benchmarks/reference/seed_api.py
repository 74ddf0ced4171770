"""The seed's web server, reduced to its enqueue route: the reference for HTTP enqueue.

A Starlette app whose `POST /workflows` makes one `DBOSClient.enqueue` per request, as the page
the project grew from does (a plain synchronous route on DBOSClient's own engine), with nothing
else: no validation, idempotency, problem responses, metrics or timeouts. uvicorn runs with its
defaults, as `uvicorn app:app` does (the access log on; httptools and uvloop, installed here,
picked automatically), so both servers log every request and share the same HTTP stack.

    DBOS_SYSTEM_DATABASE_URL=... PORT=8001 WORKERS=1 python -m benchmarks.reference.seed_api
"""

import os

import uvicorn
from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.contract import APP_VERSION, ENV_DATABASE_URL, QUEUE_NAME, WORKFLOW_NAME

client = DBOSClient(system_database_url=os.environ[ENV_DATABASE_URL])


def enqueue_workflow(request: Request) -> JSONResponse:
    options: EnqueueOptions = {
        "queue_name": QUEUE_NAME,
        "workflow_name": WORKFLOW_NAME,
        "app_version": APP_VERSION,
        "serialization_type": WorkflowSerializationFormat.PORTABLE,
    }
    client.enqueue(options, 1, 0.0)
    return JSONResponse({"status": "enqueued"})


app = Starlette(routes=[Route("/workflows", enqueue_workflow, methods=["POST"])])


def main() -> None:
    uvicorn.run(
        "benchmarks.reference.seed_api:app",
        host="127.0.0.1",
        port=int(os.environ["PORT"]),
        workers=int(os.environ.get("WORKERS", "1")),
    )


if __name__ == "__main__":
    main()

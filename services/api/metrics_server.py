"""The API's /metrics on a port of its own (API_METRICS_PORT), apart from the routes users
call: a Service can expose the API without its metrics, and a NetworkPolicy can let only
Prometheus reach them.

With several uvicorn processes each serves it, on one socket address shared with SO_REUSEPORT
(the kernel hands each connection to one of them): any process answers with the whole API's
numbers, as /metrics does on the main port (HTTP counts are shared between the processes,
the queue numbers come from the database). A single process binds the port alone, so no other
process can bind it beside it and answer scrapes in its place. The listener runs in the
process's event loop, starts with the API and stops with it; the API's own server handles the
signals.
"""

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import anyio
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.api.metrics import Metrics
from services.contract import logs

log = logs.get_logger(__name__)


class _Listener(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The API's server takes SIGTERM and SIGINT; this one is stopped by the lifespan.
        yield


def metrics_app(metrics: Metrics) -> Starlette:
    async def serve(request: Request) -> Response:
        payload = await run_in_threadpool(lambda: generate_latest(metrics.registry()))
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/metrics", serve)])


def _socket(host: str, port: int, shared: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def metrics_listener(
    metrics: Metrics, host: str, port: int, shared: bool
) -> AsyncIterator[None]:
    """Serve /metrics on host:port while the context is open (OSError if it can't bind);
    `shared`: with the API's other processes."""
    sock = _socket(host, port, shared)
    # No log_config or log_level: uvicorn would set them for the whole process (the API's
    # server's own lines included).
    config = uvicorn.Config(
        metrics_app(metrics), lifespan="off", log_config=None, log_level=None, access_log=False
    )
    server = _Listener(config)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [sock])
        log.info("api.metrics_listening", host=host, port=port)
        try:
            yield
        finally:
            server.should_exit = True
    sock.close()

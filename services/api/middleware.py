"""Plain ASGI middleware: every request's id, its metrics and its access log line, the answer
to an unexpected error, and the security headers of every answer."""

import logging
import time
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.audit import request_id
from services.api.metrics import HttpMetrics
from services.api.problems import Problem, problem_response
from services.contract import logs

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# What the kubelet and Prometheus call every few seconds: their access lines are at DEBUG.
PROBE_ROUTES: Final = frozenset({"/healthz", "/readyz", "/metrics"})

access_log = logs.get_logger("services.api.access")
log = logs.get_logger(__name__)


class NotedSend:
    """An ASGI `send` that notes the response's status once the response starts."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status: int | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


class AccessMiddleware:
    """The metrics of every request and its line in the access log: method, route template,
    status, duration (and, bound by RequestIdMiddleware, the request's id)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = NotedSend(send)
        try:
            await self.app(scope, receive, noted)
        finally:
            status = 500 if noted.status is None else noted.status
            # The route's template ("/workflows/{workflow_id}"), never the raw path: labels
            # must stay few. The router records the route it matched in the scope.
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
            seconds = time.perf_counter() - started
            self.metrics.observe(route, method, status, seconds)
            level = logging.DEBUG if route in PROBE_ROUTES and status < 500 else logging.INFO
            access_log.log(
                level,
                "http.request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )


class UnexpectedErrorMiddleware:
    """An exception no handler answered: logged once, with its traceback and the request's
    id, and answered with a 500 problem (nothing of the exception's text, which may hold SQL
    or connection details). Not raised on: Starlette's outermost handler would log it again,
    and uvicorn close the connection, failing the client's next request on it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        noted = NotedSend(send)
        try:
            await self.app(scope, receive, noted)
        except Exception as exc:
            log.error("api.unhandled_error", exc_info=exc, path=scope["path"])
            if noted.status is not None:
                raise  # too late for an answer of our own: the server ends the response
            problem = Problem(
                500, "Internal Server Error", "the server failed to handle this request"
            )
            await problem_response(problem, scope["path"])(scope, receive, send)


# Sent with every answer: no MIME sniffing, no framing (clickjacking), no Referer to other
# sites, and, unless the answer sets its own (the progress page allows its own files), a
# policy that lets an answer load nothing at all.
SECURITY_HEADERS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
DEFAULT_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", DEFAULT_CSP))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RequestIdMiddleware:
    """Every request gets an id (the caller's X-Request-Id when it looks like one, else a new
    one), kept in the request's state for the audit log and the logs, and every answer says it
    in X-Request-Id, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"x-request-id")
        given = None if header is None else header.decode("latin-1")
        identifier = request_id(given)
        scope.setdefault("state", {})["request_id"] = identifier
        bound = logs.bind(request_id=identifier)  # on every line logged for this request

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", identifier.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.unbind(bound)

"""A span per HTTP request, when tracing is on (services.contract.tracing): named by the
route's template ("POST /workflows"), a child of the caller's trace when the request carries a
W3C `traceparent`, and the parent of the workflows the request enqueues."""

from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.middleware import KNOWN_METHODS, PROBE_ROUTES, NotedSend


class RequestSpanMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("services.api")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_ROUTES:
            # Probes and scrapes, every few seconds: no trace of their own.
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
        }
        request_id = scope.get("state", {}).get("request_id")
        if request_id is not None:
            attributes["http.request.header.x-request-id"] = (request_id,)
        noted = NotedSend(send)
        with self.tracer.start_as_current_span(
            method,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            try:
                await self.app(scope, receive, noted)
            finally:
                status = 500 if noted.status is None else noted.status
                route = getattr(scope.get("route"), "path", None)
                if route is not None:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)

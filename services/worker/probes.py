"""A small HTTP server per worker: /healthz, /readyz and /metrics for Kubernetes and Prometheus."""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from services.contract import logs

log = logs.get_logger(__name__)


class Readiness:
    """Ready: launched, not draining, and heartbeats reaching the database (they fail or hang
    while it is down, and a worker that cannot reach it cannot take work)."""

    def __init__(self) -> None:
        self.launched = threading.Event()
        self.database_reachable: Callable[[], bool] = lambda: False

    def __call__(self) -> bool:
        return self.launched.is_set() and self.database_reachable()


class ProbeServer:
    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, ready: Callable[[], bool]
    ) -> None:
        registry_ = registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif self.path == "/readyz":
                    status = 200 if ready() else 503
                    self._send(status, b"ok\n" if status == 200 else b"not ready\n", "text/plain")
                elif self.path == "/metrics":
                    # OpenMetrics when the scraper asks for it (Prometheus does): the only
                    # format that carries the histograms' exemplars (trace ids).
                    encode, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, encode(registry_), content_type)
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the worker's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="probe-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        log.info("worker.probes_listening", port=self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

"""A small HTTP server per worker: /healthz, /readyz and /metrics for Kubernetes and Prometheus."""

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

logger = logging.getLogger(__name__)


class ProbeServer:
    """Readiness means launched and taking work; it turns off as soon as a drain starts."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry) -> None:
        self.ready = threading.Event()
        ready, registry_ = self.ready, registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._send(200, b"ok\n", "text/plain")
                elif self.path == "/readyz":
                    status = 200 if ready.is_set() else 503
                    self._send(status, b"ok\n" if status == 200 else b"not ready\n", "text/plain")
                elif self.path == "/metrics":
                    self._send(200, generate_latest(registry_), CONTENT_TYPE_LATEST)
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
        logger.info("worker.probes_listening port=%d", self.port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

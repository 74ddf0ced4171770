"""A minimal Kubernetes API server for the Deployment stand-in: the one request a worker with
WORKER_POD_DELETION_COST makes, a JSON merge patch of its pod's annotations, applied to the
stand-in's Pod objects and answered as the real API server answers it.

TLS with a CA of its own (made by the openssl program), because the workers' client trusts
only its service account's ca.crt, as in a cluster. Each pod gets a service account directory
of its own (token, ca.crt, namespace) with a token bound to that pod, so the server knows who
patches, and refuses what the chart's ValidatingAdmissionPolicy refuses (403): a patch of
another pod, of anything but the deletion cost, or of a cost that is not a count. Answers:
200 with the pod's JSON, 401 for an unknown token, 404 for an unknown pod or path, 405 for
another method, 415 for another patch type, 400 for a body that is not a JSON object.
"""

import json
import re
import secrets
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from benchmarks.rehearsal.deployment import DELETION_COST, Deployment, Pod

_POD_PATH = re.compile(r"/api/v1/namespaces/([^/]+)/pods/([^/]+)")
# What the chart's policy lets a worker write: a count.
_COUNT = re.compile(r"0|[1-9][0-9]{0,8}")
_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = rehearsal
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

Answer = tuple[int, dict[str, Any]]


class ApiServer:
    """The API server on 127.0.0.1 over TLS; `attach` a Deployment to serve its pods."""

    def __init__(self, workdir: Path, namespace: str = "rehearsal") -> None:
        self.namespace = namespace
        self._dir = workdir / "kube-api"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._ca = _make_tls(self._dir)
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}  # token -> the pod it is bound to
        self._pod_lists: list[Callable[[], list[Pod]]] = []
        # (caller's pod, patched pod, status) of every PATCH, in order.
        self.patches: list[tuple[str | None, str, int]] = []
        # (fieldManager, User-Agent) of every authenticated PATCH.
        self.clients: set[tuple[str, str]] = set()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._dir / "server.crt", self._dir / "server.key")
        self._server = _TlsServer(("127.0.0.1", 0), _handler(self), context)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kube-api", daemon=True
        )
        self._thread.start()

    def __enter__(self) -> "ApiServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def attach(self, deployment: Deployment) -> None:
        """Serve the Deployment's pods, each started with a service account and the API's
        address, as the kubelet starts a container."""
        self._pod_lists.append(deployment.pods)
        deployment.pod_env = self.pod_env

    def pod_env(self, pod: Pod) -> dict[str, str]:
        """What a container of `pod` finds: the API's address, its service account directory
        (a new token bound to it), and the downward API's pod name and namespace."""
        return {
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.port),
            "WORKER_SERVICE_ACCOUNT_DIR": str(self.issue_token(pod.name)),
            "WORKER_POD_NAME": pod.name,
            "WORKER_POD_NAMESPACE": self.namespace,
        }

    def issue_token(self, pod_name: str) -> Path:
        """A service account directory for the pod, with a new token (the old one, if any, no
        longer valid: a rotation)."""
        directory = self._dir / "pods" / pod_name
        directory.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: p for t, p in self._tokens.items() if p != pod_name}
            self._tokens[token] = pod_name
        (directory / "namespace").write_text(self.namespace)
        shutil.copyfile(self._ca, directory / "ca.crt")
        (directory / "token").write_text(token)
        return directory

    def patch(
        self, path: str, authorization: str, content_type: str, body: bytes, user_agent: str = ""
    ) -> Answer:
        """One PATCH request, as the API server with the chart's policy answers it."""
        caller = self._tokens.get(authorization.removeprefix("Bearer "))
        if caller is None:
            return _status(401, "Unauthorized", "Unauthorized")
        url = urlsplit(path)
        with self._lock:
            # Who wrote, as the pod's managedFields and the audit log would name it.
            self.clients.add((parse_qs(url.query).get("fieldManager", [""])[0], user_agent))
        match = _POD_PATH.fullmatch(url.path)
        if match is None:
            return _status(404, "NotFound", "the server could not find the requested resource")
        namespace, name = unquote(match[1]), unquote(match[2])
        answer = self._patch_pod(caller, namespace, name, content_type, body)
        with self._lock:
            self.patches.append((caller, name, answer[0]))
        return answer

    def _patch_pod(
        self, caller: str, namespace: str, name: str, content_type: str, body: bytes
    ) -> Answer:
        if content_type != "application/merge-patch+json":
            return _status(415, "UnsupportedMediaType", f"the media type {content_type!r}")
        pod = self._find(name) if namespace == self.namespace else None
        if pod is None:
            return _status(404, "NotFound", f'pods "{name}" not found')
        try:
            patch = json.loads(body)
        except ValueError:
            patch = None
        if not isinstance(patch, dict):
            return _status(400, "BadRequest", "the body is not a JSON object")
        if refusal := _refusal(caller, name, patch):
            return _status(403, "Forbidden", f'pods "{name}" is forbidden: {refusal}')
        with self._lock:
            annotations = dict(pod.annotations)
            for key, value in patch["metadata"]["annotations"].items():
                if value is None:
                    annotations.pop(key, None)
                else:
                    annotations[key] = value
            pod.annotations = annotations  # one assignment: readers see old or new, whole
        return 200, self._pod_json(pod)

    def _find(self, name: str) -> Pod | None:
        for pods in self._pod_lists:
            for pod in pods():
                if pod.name == name:
                    return pod
        return None

    def _pod_json(self, pod: Pod) -> dict[str, Any]:
        return {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": pod.name,
                "namespace": self.namespace,
                "uid": pod.uid,
                "annotations": dict(pod.annotations),
            },
            "status": {"phase": "Pending" if pod.phase == "Pending" else "Running"},
        }


def _refusal(caller: str, name: str, patch: dict[str, Any]) -> str | None:
    """Why the chart's ValidatingAdmissionPolicy refuses this patch, or None."""
    if caller != name:
        return "the workers' service account may patch only the pod its token is bound to"
    metadata = patch.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    if set(patch) != {"metadata"} or set(metadata or {}) != {"annotations"}:
        return f"only the annotation {DELETION_COST} may change"
    if not isinstance(annotations, dict) or set(annotations) - {DELETION_COST}:
        return f"only the annotation {DELETION_COST} may change"
    value = annotations.get(DELETION_COST)
    if value is not None and not (isinstance(value, str) and _COUNT.fullmatch(value)):
        return f"{DELETION_COST} must be a count of running workflows"
    return None


def _status(code: int, reason: str, message: str) -> Answer:
    """The API's Status object for a failed request."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return code, body


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext
    ) -> None:
        super().__init__(address, handler)
        self._tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake in the request's own thread: a slow client holds up no other.
        try:
            with self._tls.wrap_socket(request, server_side=True) as secured:
                super().finish_request(secured, client_address)
        except (ssl.SSLError, OSError):
            pass  # a client that gave up, or did not trust us


def _handler(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_PATCH(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            self._answer(
                *api.patch(
                    self.path,
                    self.headers.get("Authorization", ""),
                    self.headers.get("Content-Type", ""),
                    body,
                    self.headers.get("User-Agent", ""),
                )
            )

        def do_GET(self) -> None:
            self._answer(*_status(405, "MethodNotAllowed", "only PATCH of a pod is served"))

        do_PUT = do_POST = do_DELETE = do_GET

        def _answer(self, code: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


def _make_tls(directory: Path) -> Path:
    """A CA and a certificate for 127.0.0.1 signed by it, in `directory`; the CA's path."""
    program = shutil.which("openssl")
    if program is None:
        raise RuntimeError("the stand-in's API server needs the openssl program (Debian: openssl)")
    (directory / "openssl.cnf").write_text(_OPENSSL_CONFIG)
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    for command in (
        f"req -x509 -config {{d}}/openssl.cnf -extensions ca {key} -days 2"
        " -keyout {d}/ca.key -out {d}/ca.crt",
        f"req -new -config {{d}}/openssl.cnf {key} -keyout {{d}}/server.key -out {{d}}/server.csr",
        "x509 -req -in {d}/server.csr -CA {d}/ca.crt -CAkey {d}/ca.key -set_serial 2 -days 2"
        " -extfile {d}/openssl.cnf -extensions server -out {d}/server.crt",
    ):
        # Split before the directory goes in: a path with spaces stays one argument.
        arguments = [part.format(d=directory) for part in command.split()]
        subprocess.run([program, *arguments], check=True, capture_output=True)
    return directory / "ca.crt"

"""This pod's own object in the Kubernetes API, reached the way in-cluster clients reach it.

The API's address comes from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, which the
kubelet sets in every container; the connection is TLS trusted by the service account's
ca.crt; the bearer is the service account token, read again for every request, because a
bound token is rotated by the kubelet rewriting the file (the CA too, more rarely). Only the
standard library: one PATCH does not need the `kubernetes` client's dependencies.
"""

import http.client
import json
import ssl
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from urllib.parse import quote

# Each of connect, handshake, send and read: a slow API server delays a patch, nothing else.
REQUEST_TIMEOUT_SECONDS = 2.0
# A pod's JSON is a few kilobytes; an error's Status less: only so much is read of either.
_MAX_ANSWER_BYTES = 1 << 20
FIELD_MANAGER = "dbos-queue-worker"


def _user_agent() -> str:
    try:
        return f"{FIELD_MANAGER}/{version(FIELD_MANAGER)}"
    except PackageNotFoundError:  # run from a source tree that was never installed
        return FIELD_MANAGER


USER_AGENT = _user_agent()


class PodApiError(Exception):
    """A request that failed; the message says why in one line (never the token)."""


class PodApi:
    def __init__(
        self,
        host: str,
        port: int,
        service_account_dir: Path,
        namespace: str,
        pod_name: str,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self._host, self._port = host, port
        self._token_path = service_account_dir / "token"
        self._ca_path = service_account_dir / "ca.crt"
        where, what = quote(namespace, safe=""), quote(pod_name, safe="")
        # The field manager names this client in the pod's managedFields and the audit log.
        self._path = f"/api/v1/namespaces/{where}/pods/{what}?fieldManager={FIELD_MANAGER}"
        self._timeout = timeout_seconds
        self.pod_name = pod_name

    def check(self) -> None:
        """ValueError naming what is missing: the token or a usable CA bundle."""
        try:
            self._token()
            self._tls()
        except PodApiError as exc:
            raise ValueError(
                f"WORKER_POD_DELETION_COST: {exc} (is the service account token mounted? "
                "The pod needs automountServiceAccountToken: true)"
            ) from None

    def patch_annotations(self, annotations: dict[str, str | None]) -> None:
        """JSON merge patch of the pod's annotations (None removes one)."""
        body = json.dumps({"metadata": {"annotations": annotations}}).encode()
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        connection = http.client.HTTPSConnection(
            self._host, self._port, timeout=self._timeout, context=self._tls()
        )
        try:
            connection.request("PATCH", self._path, body, headers)
            answer = connection.getresponse()
            payload = answer.read(_MAX_ANSWER_BYTES)
        except (OSError, http.client.HTTPException) as exc:
            raise PodApiError(_one_line(f"{type(exc).__name__}: {exc}")) from None
        finally:
            connection.close()
        # Any 2xx is the patch applied; the pod it returns is not needed.
        if not 200 <= answer.status < 300:
            raise PodApiError(_one_line(f"{answer.status} {answer.reason}: {_message(payload)}"))

    def _token(self) -> str:
        try:
            token = self._token_path.read_text().strip()
        except OSError as exc:
            raise PodApiError(f"cannot read {self._token_path}: {type(exc).__name__}") from None
        if not token:
            raise PodApiError(f"{self._token_path} is empty")
        return token

    def _tls(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self._ca_path))
        except (OSError, ssl.SSLError) as exc:
            raise PodApiError(f"cannot load {self._ca_path}: {type(exc).__name__}") from None


def _message(payload: bytes) -> str:
    """The message of the API's Status answer, or the start of whatever it sent."""
    try:
        status = json.loads(payload)
        if isinstance(status, dict) and isinstance(status.get("message"), str):
            return str(status["message"])
    except ValueError:
        pass
    return payload[:200].decode(errors="replace")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]

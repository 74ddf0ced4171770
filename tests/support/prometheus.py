"""A real Prometheus (Debian's package) for tests and the rehearsal, with its HTTP API."""

import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.support.polling import wait_for
from tests.support.processes import free_port
from tests.support.tools import require_tool


class Prometheus:
    def __init__(self, config: Path, workdir: Path) -> None:
        binary = require_tool("prometheus")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Until /-/ready answers 200: before that, Prometheus answers 503 in plain text."""

        def ready() -> bool:
            assert self.process.poll() is None, (
                f"Prometheus exited:\n{self.log_path.read_text(errors='replace')}"
            )
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, timeout=timeout, interval=0.2, what=f"Prometheus ready ({self.log_path})")

    def get(self, path: str, **params: str) -> Any:
        """The `data` of a successful API answer; a clear failure for anything else."""
        response = httpx.get(f"{self.url}{path}", params=params, timeout=10)
        try:
            body = response.json()
        except ValueError:
            raise AssertionError(
                f"Prometheus answered {path} {params} with {response.status_code} "
                f"{response.reason_phrase} and a body that is not JSON: {response.text[:500]!r}"
            ) from None
        succeeded = isinstance(body, dict) and body.get("status") == "success"
        assert response.status_code == 200 and succeeded, (
            f"Prometheus answered {path} {params} with {response.status_code}: {body}"
        )
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()

"""The real services as child processes, with their output in a log file for diagnosis."""

import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import IO

import httpx

from tests.support.polling import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """`python -m <module>` with the given environment; stopped (and reaped) by `stop()`."""

    def __init__(
        self, module: str, env: dict[str, str], log_path: Path, unset: tuple[str, ...] = ()
    ) -> None:
        self.module = module
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=log_path.parent,
            env={
                **{k: v for k, v in os.environ.items() if k not in unset},
                "PYTHONPATH": str(REPO_ROOT),
                **env,
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


class WorkerProcess(ServiceProcess):
    def __init__(self, executor_id: str, module: str, env: dict[str, str], log_path: Path) -> None:
        super().__init__(module, env, log_path)
        self.executor_id = executor_id
        self.probe_url = f"http://127.0.0.1:{env['WORKER_PROBE_PORT']}"


def start_worker(
    database_url: str, workdir: Path, module: str = "services.worker", **env: str
) -> WorkerProcess:
    executor_id = env.pop("DBOS__VMID", f"test-worker-{uuid.uuid4().hex[:8]}")
    return WorkerProcess(
        executor_id,
        module,
        {
            "DBOS_SYSTEM_DATABASE_URL": database_url,
            "DBOS__VMID": executor_id,
            "WORKER_POLLING_INTERVAL_SECONDS": "0.1",
            "WORKER_DRAIN_TIMEOUT_SECONDS": "10",
            "WORKER_PROBE_PORT": str(free_port()),
            **env,
        },
        workdir / f"{executor_id}.log",
    )


def wait_worker_ready(worker: ServiceProcess, timeout: float = 60) -> None:
    def ready() -> bool:
        assert worker.process.poll() is None, f"worker exited early:\n{worker.log()}"
        return "worker.ready" in worker.log()

    wait_for(ready, timeout=timeout, interval=0.1, what=f"worker ready ({worker.log_path})")


class Api:
    """An API process and an HTTP client pointed at it."""

    def __init__(self, database_url: str, workdir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.service = ServiceProcess(
            "services.api",
            {
                "DBOS_SYSTEM_DATABASE_URL": database_url,
                "API_PORT": str(self.port),
                # Tests read metrics right after changing the queue; caching has its own test.
                "API_METRICS_CACHE_SECONDS": "0",
                **env,
            },
            workdir / f"api-{self.port}.log",
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait_listening(self, timeout: float = 30) -> None:
        def listening() -> bool:
            assert self.service.process.poll() is None, f"API exited:\n{self.service.log()}"
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(listening, timeout=timeout, interval=0.1, what="API /healthz")

    def wait_ready(self, timeout: float = 60) -> None:
        self.wait_listening(timeout)
        wait_for(
            lambda: self.http.get("/readyz").status_code == 200,
            timeout=timeout,
            interval=0.1,
            what="API /readyz",
        )

    def stop(self) -> None:
        self.http.close()
        self.service.stop()

    def enqueue(self, **body: object) -> str:
        response = self.http.post("/workflows", json=body)
        assert response.status_code == 202, response.text
        workflow_id: str = response.json()["workflow_id"]
        return workflow_id

    def workflow(self, workflow_id: str) -> dict[str, object]:
        response = self.http.get(f"/workflows/{workflow_id}")
        assert response.status_code == 200, response.text
        body: dict[str, object] = response.json()
        return body

    def wait_status(self, workflow_id: str, status: str, timeout: float = 60) -> dict[str, object]:
        def reached() -> dict[str, object] | None:
            workflow = self.workflow(workflow_id)
            return workflow if workflow["status"] == status else None

        return wait_for(reached, timeout=timeout, what=f"workflow {workflow_id} to be {status}")

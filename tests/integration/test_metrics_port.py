"""/metrics on a port of its own (API_METRICS_PORT): not on the API's port, served by every
uvicorn process on one shared address, with the whole API's numbers, and stopped with it."""

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import NewDatabase
from tests.support.metrics import sample
from tests.support.processes import Api, free_port


@pytest.fixture(params=[1, 2], ids=["one-process", "two-processes"])
def api(
    request: pytest.FixtureRequest, new_migrated_database: NewDatabase, tmp_path: Path
) -> Iterator[tuple[Api, int]]:
    port = free_port()
    api = Api(
        new_migrated_database("sqlite"),
        tmp_path,
        API_METRICS_PORT=str(port),
        API_WORKERS=str(request.param),
    )
    api.wait_ready()
    yield api, port
    api.stop()
    # A clean stop with the listener's task ended (uvicorn re-raises the SIGTERM it handled).
    assert api.service.process.returncode in (0, -signal.SIGTERM), api.service.log()
    assert "Application shutdown complete" in api.service.log()
    assert "Traceback" not in api.service.log()


def test_metrics_are_on_their_own_port_only(api: tuple[Api, int]) -> None:
    served, port = api
    for _ in range(5):
        assert served.http.get("/workflows").status_code == 200
    hidden = served.http.get("/metrics")
    assert hidden.status_code == 404
    assert f"on their own port ({port})" in hidden.json()["detail"]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as metrics:
        # Several scrapes, so that with two processes both answer (the kernel picks one).
        for _ in range(6):
            answer = metrics.get("/metrics")
            assert answer.status_code == 200
            text = answer.text
            assert sample(text, "queue_worker_queue_load", queue="workflow-queue") == 0
            requests = sample(
                text,
                "queue_worker_http_requests_total",
                route="/workflows",
                method="GET",
                status="200",
            )
            assert requests == 5
        # Nothing else is served there.
        assert metrics.get("/workflows").status_code == 404


def test_the_metrics_port_must_differ_from_the_apis(tmp_path: Path) -> None:
    from services.api.settings import ApiSettings

    with pytest.raises(ValueError, match="API_METRICS_PORT must differ from API_PORT"):
        ApiSettings.from_env({"API_PORT": "8000", "API_METRICS_PORT": "8000"})


def test_a_single_process_holds_its_metrics_port_alone(
    new_migrated_database: NewDatabase, tmp_path: Path
) -> None:
    port = free_port()
    api = Api(new_migrated_database("sqlite"), tmp_path, API_METRICS_PORT=str(port))
    try:
        api.wait_ready()
        # Another process of the same user asking to share the port is refused: it can't
        # answer scrapes in the API's place.
        intruder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            with pytest.raises(OSError, match="Address already in use"):
                intruder.bind(("127.0.0.1", port))
        finally:
            intruder.close()
    finally:
        api.stop()

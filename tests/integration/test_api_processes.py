"""Several API processes answer as promptly as one.

With more than one process uvicorn binds the shared socket itself without naming its protocol,
and asyncio then leaves Nagle's algorithm on for every connection it accepts: a response
written in two parts (head, then body) waited for the client's delayed ACK, at least 40 ms on
Linux, so every request on a kept-alive connection took over 40 ms (44 ms measured), however
idle the server.
"""

import statistics
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import NewDatabase
from tests.support.processes import Api

# Far below the 40 ms of a delayed ACK, far above a local round trip on a loaded machine.
PROMPT_MS = 20


@pytest.mark.parametrize("processes", ["1", "2"])
def test_requests_on_a_kept_alive_connection_wait_for_no_delayed_ack(
    new_migrated_database: NewDatabase, tmp_path: Path, processes: str
) -> None:
    api = Api(new_migrated_database("postgres"), tmp_path, API_WORKERS=processes)
    try:
        api.wait_ready()
        with httpx.Client(base_url=api.url) as client:
            for method, path, body in (
                ("GET", "/healthz", None),
                ("POST", "/workflows", {"num_steps": 1, "step_seconds": 0}),
            ):
                took = []
                for _ in range(15):
                    started = time.perf_counter()
                    response = client.request(method, path, json=body)
                    took.append((time.perf_counter() - started) * 1000)
                    assert response.status_code < 300, response.text
                assert statistics.median(took) < PROMPT_MS, (
                    f"{method} {path} on {processes} process(es): {sorted(took)} ms"
                )
    finally:
        api.stop()

"""HTTP enqueue side by side: the project's API against the seed-shaped server, with wrk.

Each trial has a fresh database and a fresh server; wrk (Debian's) sends `POST /workflows` with a
JSON body over 16 or 64 keep-alive connections for a few seconds. Beside it, in the same run,
the ceiling: `DBOSClient.enqueue` in process from 8 threads, no HTTP. Batches: `POST
/workflows:batch` of 1,000 workflows over 1 and 4 connections, against DBOS's own way to enqueue
many at once (`enqueue_in_transaction`, 1,000 per transaction, in process).
"""

import json
import tempfile
from pathlib import Path
from typing import Any

import httpx

from benchmarks.measure import Databases, enqueue_in_transactions, enqueue_many, median, wrk
from services.contract import ENV_DATABASE_URL
from tests.support.polling import wait_for
from tests.support.processes import ServiceProcess, free_port

BODY = '{"num_steps": 1, "step_seconds": 0}'
BATCH_SIZE = 1000
BATCH_BODY = json.dumps({"workflows": [{"num_steps": 1, "step_seconds": 0}] * BATCH_SIZE})


def wrk_script(body: str) -> str:
    return f"""wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""


class Server:
    """The project's API (`services.api`) or the reference (`benchmarks.reference.seed_api`)."""

    def __init__(self, kind: str, url: str, processes: int, workdir: Path) -> None:
        self.port = free_port()
        if kind == "ours":
            module = "services.api"
            env = {"API_PORT": str(self.port), "API_WORKERS": str(processes)}
        else:
            module = "benchmarks.reference.seed_api"
            env = {"PORT": str(self.port), "WORKERS": str(processes)}
        self.process = ServiceProcess(
            module, {ENV_DATABASE_URL: url, **env}, workdir / f"{kind}-{self.port}.log"
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_serving(self) -> None:
        def enqueued() -> bool:
            assert self.process.process.poll() is None, self.process.log()
            try:
                response = httpx.post(
                    f"{self.url}/workflows",
                    content=BODY,
                    headers={"Content-Type": "application/json"},
                )
            except httpx.TransportError:
                return False
            return response.status_code < 300

        wait_for(enqueued, timeout=60, interval=0.2, what=f"{self.url} to enqueue")

    def stop(self) -> None:
        self.process.stop()


def run(dbs: Databases, reps: int, seconds: int, quick: bool = False) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="bench-enqueue-"))
    script, batch_script = workdir / "post.lua", workdir / "batch.lua"
    script.write_text(wrk_script(BODY))
    batch_script.write_text(wrk_script(BATCH_BODY))
    connection_counts = (16,) if quick else (16, 64)
    configs = [("ours", 1), ("seed", 1), ("ours", 2), ("seed", 2)]
    trials: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    ceiling: list[float] = []
    batch_reference: list[float] = []
    for rep in range(reps):
        order = configs if rep % 2 == 0 else list(reversed(configs))
        for kind, processes in order:
            server = Server(kind, dbs.fresh(), processes, workdir)
            try:
                server.wait_serving()
                for connections in connection_counts:
                    figures = wrk(f"{server.url}/workflows", connections, seconds, script)
                    print(f"  enqueue {kind} x{processes} c{connections}: {figures}", flush=True)
                    trials.append(
                        {
                            "server": kind,
                            "processes": processes,
                            "connections": connections,
                            **figures,
                        }
                    )
            finally:
                server.stop()
        rate = enqueue_many(dbs.fresh(), 2000, num_steps=1, step_seconds=0.0, threads=8)
        print(f"  enqueue in process, 8 threads: {rate:.0f}/s", flush=True)
        ceiling.append(rate)
        for processes in (1,) if quick else (1, 2):
            batches += batch_trials(dbs, processes, seconds, batch_script, workdir)
        rate = enqueue_in_transactions(dbs.fresh(), 5, BATCH_SIZE)
        print(f"  enqueue_in_transaction in process, {BATCH_SIZE} per tx: {rate:.0f}/s", flush=True)
        batch_reference.append(rate)
    return {
        "trials": trials,
        "ceiling_rps": ceiling,
        "batches": batches,
        "batch_reference_wf_per_s": batch_reference,
    }


def batch_trials(
    dbs: Databases, processes: int, seconds: int, script: Path, workdir: Path
) -> list[dict[str, Any]]:
    server = Server("ours", dbs.fresh(), processes, workdir)
    trials = []
    try:
        server.wait_serving()
        for connections in (1, 4):
            figures = wrk(f"{server.url}/workflows:batch", connections, seconds, script)
            figures["wf_per_s"] = figures["rps"] * BATCH_SIZE
            print(f"  batch x{processes} c{connections}: {figures}", flush=True)
            trials.append({"processes": processes, "connections": connections, **figures})
    finally:
        server.stop()
    return trials


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    return {
        "rows": _medians(
            results["trials"],
            ("server", "processes", "connections"),
            ("rps", "p50_ms", "p90_ms", "p99_ms"),
        ),
        "ceiling_rps": median(results["ceiling_rps"]),
        "batch_rows": _medians(
            results.get("batches", []),
            ("processes", "connections"),
            ("wf_per_s", "p50_ms", "p99_ms"),
        ),
        "batch_reference_wf_per_s": median(results.get("batch_reference_wf_per_s", [])),
    }


def _medians(
    trials: list[dict[str, Any]], keys: tuple[str, ...], figures: tuple[str, ...]
) -> list[dict[str, Any]]:
    """One row per configuration (the `keys`' values), each figure the median of its trials."""
    rows = []
    for config in sorted({tuple(t[k] for k in keys) for t in trials}):
        same = [t for t in trials if tuple(t[k] for k in keys) == config]
        rows.append(
            {
                **dict(zip(keys, config, strict=True)),
                **{f: median([t[f] for t in same]) for f in figures},
            }
        )
    return rows

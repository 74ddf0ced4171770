"""A bare DBOS worker: the same workflow on the same queue, and nothing else.

What someone following DBOS's queue-worker example would run: DBOS launched, the queue
registered with `worker_concurrency` and a polling interval, the workflow (steps, with a progress
event after each). No fleet heartbeats, recovery of other executors, metrics, probes or drain.
The execution benchmarks compare the project's worker with it, in the same run.

    DBOS_SYSTEM_DATABASE_URL=... WORKER_CONCURRENCY=10 WORKER_POLLING_INTERVAL_SECONDS=1 \
        python -m benchmarks.reference.bare_worker
"""

import os
import signal
import threading
import time

from dbos import DBOS, DBOSConfig, WorkflowSerializationFormat

from services.contract import (
    APP_NAME,
    APP_VERSION,
    ENV_APP_VERSION,
    ENV_DATABASE_URL,
    PROGRESS_EVENT_KEY,
    QUEUE_NAME,
    WORKFLOW_NAME,
)

PORTABLE = WorkflowSerializationFormat.PORTABLE


@DBOS.workflow(name=WORKFLOW_NAME, serialization_type=PORTABLE)
def workflow(num_steps: int = 10, step_seconds: float = 1.0) -> dict[str, int]:
    progress = {"steps_completed": 0, "num_steps": num_steps}
    DBOS.set_event(PROGRESS_EVENT_KEY, progress, serialization_type=PORTABLE)
    for index in range(num_steps):
        step(step_seconds)
        progress = {"steps_completed": index + 1, "num_steps": num_steps}
        DBOS.set_event(PROGRESS_EVENT_KEY, progress, serialization_type=PORTABLE)
    return progress


@DBOS.step()
def step(step_seconds: float) -> None:
    time.sleep(step_seconds)


def main() -> None:
    config: DBOSConfig = {
        "name": APP_NAME,
        "system_database_url": os.environ[ENV_DATABASE_URL],
        "application_version": os.environ.get(ENV_APP_VERSION, APP_VERSION),
        "executor_id": os.environ.get("DBOS__VMID", "bare-worker"),
        "run_migrations": False,
    }
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    DBOS(config=config)
    DBOS.launch()
    DBOS.register_queue(
        QUEUE_NAME,
        worker_concurrency=int(os.environ.get("WORKER_CONCURRENCY", "10")),
        polling_interval_sec=float(os.environ.get("WORKER_POLLING_INTERVAL_SECONDS", "1")),
    )
    print("worker.ready", flush=True)
    stop.wait()
    DBOS.destroy()


if __name__ == "__main__":
    main()

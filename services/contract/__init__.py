"""The contract between the API and the worker: the only module both services import.

The API enqueues the workflow by name and reads its progress event, so these names must match
what the worker registers. Nothing else is shared between the two images.
"""

from typing import Final, TypedDict

APP_NAME: Final = "dbos-queue-worker"
QUEUE_NAME: Final = "workflow-queue"
WORKFLOW_NAME: Final = "workflow"
PROGRESS_EVENT_KEY: Final = "workflow_progress"

# Pinned application version. DBOS's default (a hash of the workflow source) would change on
# every code edit and strand queued work behind a version no worker runs. Change this only for
# an incompatible change to the workflow's steps; DBOS__APPVERSION overrides it per deployment.
APP_VERSION: Final = "1"

# Environment variables both services read. DBOS itself reads the DBOS_* ones too.
ENV_DATABASE_URL: Final = "DBOS_SYSTEM_DATABASE_URL"
ENV_APP_VERSION: Final = "DBOS__APPVERSION"
DEFAULT_DATABASE_URL: Final = "sqlite:///dbos_queue_worker.sqlite"

# The fleet's liveness table: each worker heartbeats into it, the reaper and the API read it.
# Schema FLEET_SCHEMA on PostgreSQL (beside DBOS's "dbos"); the main schema on SQLite.
FLEET_SCHEMA: Final = "queue_worker"
HEARTBEATS_TABLE: Final = "worker_heartbeats"
# A worker silent for longer than this is dead: its PENDING work goes back on the queue.
ENV_EXECUTOR_GRACE_SECONDS: Final = "EXECUTOR_GRACE_SECONDS"
DEFAULT_EXECUTOR_GRACE_SECONDS: Final = 30.0

# Every metric name starts with this. The autoscaling signal's name is part of the contract
# with the Helm chart (its HPA, KEDA trigger, dashboard and alerts name it).
METRIC_PREFIX: Final = "queue_worker_"
QUEUE_LOAD_METRIC: Final = "queue_worker_queue_load"

# Workflow arguments, enforced by the API before anything reaches the database.
DEFAULT_NUM_STEPS: Final = 10
MAX_NUM_STEPS: Final = 1000
DEFAULT_STEP_SECONDS: Final = 1.0
MAX_STEP_SECONDS: Final = 60.0


class Progress(TypedDict):
    """The value of the progress event the workflow publishes after each step."""

    steps_completed: int
    num_steps: int


def normalize_database_url(url: str) -> str:
    """The system database URL as both services use it; ValueError naming what is wrong.

    `postgres://` (as many hosting providers write it) means `postgresql://`. The message never
    repeats the URL: it may hold a password.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise ValueError(f"{ENV_DATABASE_URL} must be a URL such as postgresql://host/db")
    backend = scheme.split("+")[0].lower()
    if backend == "postgres":
        return f"postgresql://{rest}"
    if backend not in ("postgresql", "sqlite"):
        raise ValueError(
            f"{ENV_DATABASE_URL} must start with postgresql:// or sqlite:///, not {backend}://"
        )
    return url

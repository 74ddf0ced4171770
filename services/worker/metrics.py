"""The worker's own Prometheus metrics: what this process runs, how long it waits and takes."""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dbos import error as dbos_error
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services import contract
from services.worker.fleet import WorkflowRow

logger = logging.getLogger(__name__)

# Reads one workflow's row (status, timestamps, attempts) from the database.
RowReader = Callable[[str], WorkflowRow | None]

# "superseded": another execution took the workflow over (after recovery); it goes on there.
OUTCOMES = ("success", "error", "cancelled", "superseded")


_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["queue"]
        self.capacity = Gauge(
            "queue_worker_worker_concurrency",
            "Workflows this worker may run at once (worker_concurrency).",
            labels,
            registry=self.registry,
        )
        self.active = Gauge(
            "queue_worker_workflows_active",
            "Workflows this worker is running now.",
            labels,
            registry=self.registry,
        )
        self.completed = Counter(
            "queue_worker_workflows_completed",
            "Workflow executions that ended on this worker, by outcome.",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "queue_worker_workflow_duration_seconds",
            "Time one execution of a workflow took on this worker, by outcome.",
            [*labels, "outcome"],
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait = Histogram(
            "queue_worker_queue_wait_seconds",
            "Time from enqueue to first start (DBOS's own timestamps).",
            labels,
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "queue_worker_step_duration_seconds",
            "Time one step body took.",
            labels,
            buckets=_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.row_reader: RowReader | None = None
        for outcome in OUTCOMES:
            self.completed.labels(contract.QUEUE_NAME, outcome)
            self.duration.labels(contract.QUEUE_NAME, outcome)

    @contextmanager
    def workflow(self, workflow_id: str | None, row: WorkflowRow | None) -> Iterator[None]:
        """Count and time one execution; `row` is its workflow's row as read at its start."""
        queue = contract.QUEUE_NAME
        self._observe_queue_wait(row)
        started = time.monotonic()
        self.active.labels(queue).inc()
        outcome = "error"
        try:
            yield
            outcome = "success"
        except BaseException as exc:
            outcome = self._outcome_of(exc, workflow_id)
            raise
        finally:
            self.active.labels(queue).dec()
            self.completed.labels(queue, outcome).inc()
            self.duration.labels(queue, outcome).observe(time.monotonic() - started)

    @contextmanager
    def step(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.step_duration.labels(contract.QUEUE_NAME).observe(time.monotonic() - started)

    def _read(self, workflow_id: str | None) -> WorkflowRow | None:
        if self.row_reader is None or workflow_id is None:
            return None
        try:
            return self.row_reader(workflow_id)
        except Exception as exc:  # a metric is never worth failing a workflow for
            logger.debug("metrics.row_unavailable error=%s", type(exc).__name__)
            return None

    def _observe_queue_wait(self, row: WorkflowRow | None) -> None:
        # Only a first start measures the queue's wait; a recovered run restarts much later.
        if row is not None and row.started_at_ms is not None and row.recovery_attempts <= 1:
            wait_seconds = max(0.0, (row.started_at_ms - row.created_at_ms) / 1000)
            self.queue_wait.labels(contract.QUEUE_NAME).observe(wait_seconds)

    def _outcome_of(self, exc: BaseException, workflow_id: str | None) -> str:
        if isinstance(exc, dbos_error.DBOSWorkflowCancelledError):
            return "cancelled"
        if isinstance(exc, dbos_error.DBOSWorkflowConflictIDError):
            # This execution lost the workflow: cancelled, or taken over after recovery.
            row = self._read(workflow_id)
            return "cancelled" if row is not None and row.status == "CANCELLED" else "superseded"
        return "error"


METRICS = WorkerMetrics()

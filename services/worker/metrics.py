"""The worker's own Prometheus metrics: what this process runs, how long it waits and takes."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from dbos import error as dbos_error
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.contract import logs, tracing
from services.worker.fleet import WorkflowRow

log = logs.get_logger(__name__)

# Reads one workflow's row (status, timestamps, attempts) from the database.
RowReader = Callable[[str], WorkflowRow | None]

# The queue label of a workflow started without a queue (a child started directly).
NO_QUEUE = "none"
# The queue of the workflow whose code runs in this thread: its steps are timed under it.
_current_queue: ContextVar[str] = ContextVar("queue", default=NO_QUEUE)

# "superseded": another execution took the workflow over (after recovery); it goes on there.
OUTCOMES = ("success", "error", "cancelled", "superseded")


@dataclass
class Ended:
    """How one execution ended: its outcome (OUTCOMES), its time, its exception's type."""

    outcome: str = "error"
    seconds: float = 0.0
    error: str | None = None


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
        self.deletion_cost_patches = Counter(
            "queue_worker_pod_deletion_cost_patches",
            "Patches of this pod's controller.kubernetes.io/pod-deletion-cost, by outcome (ok, "
            "failed); with WORKER_POD_DELETION_COST only.",
            ["outcome"],
            registry=self.registry,
        )
        self.deletion_cost = Gauge(
            "queue_worker_pod_deletion_cost",
            "The deletion cost this worker last wrote on its pod.",
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

    def serve(self, queue: str, worker_concurrency: int) -> None:
        """Report a queue this worker serves: its capacity, and zeros until work ends."""
        self.capacity.labels(queue).set(worker_concurrency)
        self.active.labels(queue)
        for outcome in OUTCOMES:
            self.completed.labels(queue, outcome)
            self.duration.labels(queue, outcome)

    @contextmanager
    def workflow(
        self, workflow_id: str | None, row: WorkflowRow | None, ended: Ended | None = None
    ) -> Iterator[None]:
        """Count and time one execution; `row` is its workflow's row as read at its start.
        `ended`, given, is told how it ended and how long it took."""
        queue = row.queue_name if row is not None and row.queue_name else NO_QUEUE
        self._observe_queue_wait(queue, row)
        token = _current_queue.set(queue)
        started = time.monotonic()
        self.active.labels(queue).inc()
        outcome = "error"
        try:
            yield
            outcome = "success"
        except BaseException as exc:
            outcome = self._outcome_of(exc, workflow_id)
            if ended is not None:
                ended.error = type(exc).__name__
            raise
        finally:
            seconds = time.monotonic() - started
            _current_queue.reset(token)
            self.active.labels(queue).dec()
            self.completed.labels(queue, outcome).inc()
            # With tracing on, an exemplar names the execution's trace (DBOS's workflow span).
            self.duration.labels(queue, outcome).observe(seconds, tracing.current_ids() or None)
            if ended is not None:
                ended.outcome, ended.seconds = outcome, seconds

    @contextmanager
    def step(self) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            queue = _current_queue.get()
            self.step_duration.labels(queue).observe(time.monotonic() - started)

    def _read(self, workflow_id: str | None) -> WorkflowRow | None:
        if self.row_reader is None or workflow_id is None:
            return None
        try:
            return self.row_reader(workflow_id)
        except Exception as exc:  # a metric is never worth failing a workflow for
            log.debug("metrics.row_unavailable", error=type(exc).__name__)
            return None

    def _observe_queue_wait(self, queue: str, row: WorkflowRow | None) -> None:
        # Only a first start measures the queue's wait; a recovered run restarts much later.
        if row is not None and row.started_at_ms is not None and row.recovery_attempts <= 1:
            wait_seconds = max(0.0, (row.started_at_ms - row.created_at_ms) / 1000)
            self.queue_wait.labels(queue).observe(wait_seconds, tracing.current_ids() or None)

    def _outcome_of(self, exc: BaseException, workflow_id: str | None) -> str:
        if isinstance(exc, dbos_error.DBOSWorkflowCancelledError):
            return "cancelled"
        if isinstance(exc, dbos_error.DBOSWorkflowConflictIDError):
            # This execution lost the workflow: cancelled, or taken over after recovery.
            row = self._read(workflow_id)
            return "cancelled" if row is not None and row.status == "CANCELLED" else "superseded"
        return "error"


METRICS = WorkerMetrics()

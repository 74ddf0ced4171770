"""What the API does with workflows once enqueued (services.api.enqueues): reads (the Store),
cancel and resume."""

from dbos import DBOSClient, WorkflowStatusString

from services.api.listing import (
    PageFilter,
    PageKey,
    WorkflowRecord,
)
from services.api.steps import StepRecord
from services.api.store import Store
from services.contract.registry import Registry

RESUMABLE = {
    WorkflowStatusString.CANCELLED.value,
    WorkflowStatusString.MAX_RECOVERY_ATTEMPTS_EXCEEDED.value,
}
# A cancelled execution is reported gone at its worker's next heartbeat after its step ends.
RESUME_RETRY_AFTER_SECONDS = 1


class WorkflowNotFound(LookupError):
    pass


class WorkflowConflict(Exception):
    """The request can't apply to the workflow in its current state; the message says why."""

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        # Set when the same request may succeed later: the state is passing.
        self.retry_after_seconds = retry_after_seconds


class Workflows:
    def __init__(self, client: DBOSClient, store: Store, grace_ms: int, registry: Registry) -> None:
        self._client = client
        self._registry = registry
        self._store = store
        self._grace_ms = grace_ms

    def get(self, workflow_id: str) -> WorkflowRecord:
        record = self._store.get(workflow_id)
        if record is None:
            raise WorkflowNotFound(workflow_id)
        return record

    def steps(self, workflow_id: str) -> list[StepRecord]:
        steps = self._store.steps(workflow_id)
        if steps is None:
            raise WorkflowNotFound(workflow_id)
        return steps

    def list_page(
        self, limit: int, after: PageKey | None, only: PageFilter
    ) -> list[WorkflowRecord]:
        return self._store.list_page(limit, after, only)

    def cancel(self, workflow_id: str) -> WorkflowRecord:
        # DBOS's cancel is one conditional UPDATE that leaves finished workflows alone: the
        # row read after it says which happened.
        self._client.cancel_workflow(workflow_id)
        self._store.stamp_cancelled(workflow_id)
        record = self.get(workflow_id)
        if record.status != "CANCELLED":
            raise WorkflowConflict(f"workflow already finished with status {record.status}")
        return record

    def resume(self, workflow_id: str) -> WorkflowRecord:
        record = self.get(workflow_id)  # 404 when unknown
        # Back on its type's queue (DBOS's cancel clears it; its resume without a queue picks
        # an unlimited one).
        workflow_type = self._registry.workflows.get(record.workflow or "")
        if workflow_type is None:
            raise WorkflowConflict(
                f"workflow type {record.workflow!r} is not in the registry: no queue to resume "
                "it on, and no worker would run it"
            )
        if self._store.requeue(workflow_id, workflow_type.queue, RESUMABLE, self._grace_ms):
            return self.get(workflow_id)
        record = self.get(workflow_id)
        if record.status not in RESUMABLE:
            raise WorkflowConflict(
                f"only CANCELLED or MAX_RECOVERY_ATTEMPTS_EXCEEDED workflows can be resumed; "
                f"this one is {record.status}"
            )
        # Resumable, but its cancelled execution may still be inside a step (or was a moment
        # ago): retrying after its worker's next heartbeat succeeds.
        raise WorkflowConflict(
            f"the cancelled execution on executor {record.executor_id} may still be inside a "
            "step; retry once its worker has reported it stopped (within a heartbeat interval)",
            retry_after_seconds=RESUME_RETRY_AFTER_SECONDS,
        )

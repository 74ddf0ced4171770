"""What the API does with workflows, over the DBOSClient (writes) and the Store (reads)."""

from collections.abc import Sequence
from typing import Any

from dbos import DBOSClient, EnqueueOptions, WorkflowSerializationFormat

from services import contract
from services.api import enqueue_rows
from services.api.db_threads import DatabaseThreads
from services.api.enqueue_groups import EnqueueGroups
from services.api.listing import PageKey, WorkflowRecord, records
from services.api.schemas import EnqueueRequest, same_request
from services.api.steps import StepRecord
from services.api.store import Store

# Workflows of concurrent requests written in one transaction, at most, and such transactions
# in flight at once.
MAX_ENQUEUE_GROUP = 100
ENQUEUE_WRITERS = 2
RESUMABLE = {"CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}
# A cancelled execution is reported gone at its worker's next heartbeat after its step ends.
RESUME_RETRY_AFTER_SECONDS = 1


class WorkflowNotFound(LookupError):
    pass


class BatchConflict(Exception):
    """An item of a batch reuses an idempotency key of another request; nothing was enqueued."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index


class WorkflowConflict(Exception):
    """The request can't apply to the workflow in its current state; the message says why."""

    def __init__(self, message: str, retry_after_seconds: int | None = None) -> None:
        super().__init__(message)
        # Set when the same request may succeed later: the state is passing.
        self.retry_after_seconds = retry_after_seconds


class Workflows:
    def __init__(
        self,
        client: DBOSClient,
        store: Store,
        threads: DatabaseThreads,
        application_version: str,
        grace_ms: int,
    ) -> None:
        self._client = client
        self._store = store
        self._application_version = application_version
        self._grace_ms = grace_ms
        self._threads = threads
        self._enqueues = EnqueueGroups(
            threads, self._enqueue_many, MAX_ENQUEUE_GROUP, ENQUEUE_WRITERS
        )

    def _options(self, request: EnqueueRequest, workflow_id: str | None) -> EnqueueOptions:
        options: EnqueueOptions = {
            "queue_name": contract.QUEUE_NAME,
            "workflow_name": contract.WORKFLOW_NAME,
            # Pinned, so only workers of this version take it (see README: versions).
            "app_version": self._application_version,
            "serialization_type": WorkflowSerializationFormat.PORTABLE,
        }
        if request.priority is not None:
            options["priority"] = request.priority
        if workflow_id is not None:
            options["workflow_id"] = workflow_id
        return options

    async def enqueue(self, request: EnqueueRequest, workflow_id: str | None) -> tuple[str, bool]:
        """Enqueue one workflow; returns its id and whether an earlier request already made it.

        Committed together with the enqueues of concurrent requests (one transaction for all).
        """
        options = self._options(request, workflow_id)
        written = await self._enqueues.submit((options, request.workflow_args()))
        if written.created:
            return written.workflow_id, False
        existing = await self._threads.run(self._store.get, written.workflow_id)
        if existing is None or not same_request(existing, request):
            raise WorkflowConflict("this Idempotency-Key was already used for a different request")
        return written.workflow_id, True

    def _enqueue_many(
        self, batch: Sequence[tuple[EnqueueOptions, list[Any]]]
    ) -> list[enqueue_rows.Written]:
        with self._store.begin() as conn:
            return enqueue_rows.write(conn, self._client, batch)

    def enqueue_batch(
        self, batch: list[tuple[EnqueueRequest, str | None]]
    ) -> list[tuple[str, bool]]:
        """Enqueue all of the batch in one transaction, or none of it.

        Returns each workflow's id and whether an earlier request with its idempotency key
        already made it; BatchConflict (and nothing enqueued) when a key was used for
        another request. The ids with a key must be distinct.
        """
        with self._store.begin() as conn:
            written = enqueue_rows.write(
                conn,
                self._client,
                [
                    (self._options(request, workflow_id), request.workflow_args())
                    for request, workflow_id in batch
                ],
            )
            existing = [w.workflow_id for w in written if not w.created]
            found = records(conn, existing) if existing else {}
            for index, ((request, _), w) in enumerate(zip(batch, written, strict=True)):
                # A row that vanished since (retention) cannot be compared: not the same.
                if not w.created and (
                    w.workflow_id not in found or not same_request(found[w.workflow_id], request)
                ):
                    raise BatchConflict(index)
        return [(w.workflow_id, not w.created) for w in written]

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
        self, limit: int, after: PageKey | None, status: str | None
    ) -> list[WorkflowRecord]:
        return self._store.list_page(limit, after, status)

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
        # Back on its own queue (DBOS's resume without a queue picks an unlimited one).
        if self._store.requeue(workflow_id, contract.QUEUE_NAME, RESUMABLE, self._grace_ms):
            return self.get(workflow_id)
        record = self.get(workflow_id)  # 404 when unknown
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

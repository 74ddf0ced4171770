"""The workflow executions whose code runs in this process now, as heartbeats report them.

A cancelled workflow's execution runs on until its current step ends (DBOS checks for
cancellation between steps). The API resumes a workflow only once the heartbeat of the worker
that ran it, written after the cancel, no longer lists it: so a resume never starts a second
execution beside one still inside a step.

An execution is listed from the moment its code starts; DBOS claims it a moment before, in
another thread. An execution that starts after its workflow was cancelled, or cancelled and
resumed (a claim whose thread was slow to start), would be listed too late: so right after it
is listed, it reads its row and stops before any step unless it still owns the workflow.
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dbos import error as dbos_error
from dbos._context import current_owner_xid

from services.contract import logs
from services.worker.fleet import WorkflowRow

log = logs.get_logger(__name__)

# The exceptions with which an execution ends because it lost its workflow (cancelled, or
# taken over elsewhere): someone may be waiting for this process to report it gone.
_LOST = (dbos_error.DBOSWorkflowCancelledError, dbos_error.DBOSWorkflowConflictIDError)

RowReader = Callable[[str], WorkflowRow | None]


def _no_row(workflow_id: str) -> WorkflowRow | None:
    return None


class Executions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        # Called when an execution ends because its workflow was cancelled or taken over.
        self.on_lost: Callable[[], None] = lambda: None
        # Called when the number of executions changed; must be quick and must not raise.
        self.on_change: Callable[[], None] = lambda: None
        self.read_row: RowReader = _no_row

    @contextmanager
    def running(self, workflow_id: str | None) -> Iterator[WorkflowRow | None]:
        """List the execution while its code runs; yields its row as read at the start."""
        if workflow_id is None:
            yield None
            return
        with self._lock:
            self._running[workflow_id] += 1
        self.on_change()
        lost = False
        try:
            row = self._read(workflow_id)
            owner = current_owner_xid(workflow_id)
            if (
                row is not None
                and owner is not None
                and (row.owner_xid, row.status)
                != (
                    owner,
                    "PENDING",
                )
            ):
                log.info("execution.not_owned", workflow_id=workflow_id, status=row.status)
                raise dbos_error.DBOSWorkflowConflictIDError(workflow_id)
            yield row
        except _LOST:
            lost = True
            raise
        finally:
            with self._lock:
                self._running[workflow_id] -= 1
                if self._running[workflow_id] <= 0:
                    del self._running[workflow_id]
            self.on_change()
            if lost:
                self.on_lost()

    def snapshot(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._running)

    def count(self) -> int:
        """How many workflows run here now."""
        with self._lock:
            return len(self._running)

    def _read(self, workflow_id: str) -> WorkflowRow | None:
        try:
            return self.read_row(workflow_id)
        except Exception as exc:
            # Without the row the start goes ahead: DBOS's ownership check still stops a
            # superseded execution at its first checkpoint (after that step's body ran).
            log.warning("execution.row_unavailable", error=type(exc).__name__)
            return None


EXECUTIONS = Executions()

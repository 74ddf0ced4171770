"""The workflow executions whose code runs in this process now, as heartbeats report them.

A cancelled workflow's execution runs on until its current step ends (DBOS checks for
cancellation between steps). The API resumes a workflow only once the heartbeat of the worker
that ran it, written after the cancel, no longer lists it: so a resume never starts a second
execution beside one still inside a step.
"""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from dbos import error as dbos_error

# The exceptions with which an execution ends because it lost its workflow (cancelled, or
# taken over elsewhere): someone may be waiting for this process to report it gone.
_LOST = (dbos_error.DBOSWorkflowCancelledError, dbos_error.DBOSWorkflowConflictIDError)


class Executions:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        # Called when an execution ends because its workflow was cancelled or taken over.
        self.on_lost: Callable[[], None] = lambda: None

    @contextmanager
    def running(self, workflow_id: str | None) -> Iterator[None]:
        if workflow_id is None:
            yield
            return
        with self._lock:
            self._running[workflow_id] += 1
        lost = False
        try:
            yield
        except _LOST:
            lost = True
            raise
        finally:
            with self._lock:
                self._running[workflow_id] -= 1
                if self._running[workflow_id] <= 0:
                    del self._running[workflow_id]
            if lost:
                self.on_lost()

    def snapshot(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._running)


EXECUTIONS = Executions()

"""Reads of workflow rows for executions that start together, one query for all of them.

Every execution reads its workflow's row as it starts (the ownership fence in executions.py;
the queue-wait metric). DBOS starts the workflows of one poll at the same moment, so those
reads arrive together: one query at a time reads every row asked for meanwhile (a group commit,
for reads). An execution alone waits for one read, as before; under load the rows of a whole
poll come back in one round trip, and a workflow costs no transaction of its own beyond DBOS's.
"""

import threading
from collections import defaultdict
from collections.abc import Callable, Collection

from services.worker.fleet import WorkflowRow

# Reads the rows of the given workflows; a workflow without a row is left out.
ReadMany = Callable[[Collection[str]], dict[str, WorkflowRow]]


class _Slot:
    __slots__ = ("done", "error", "row")

    def __init__(self) -> None:
        self.done = False
        self.row: WorkflowRow | None = None
        self.error: BaseException | None = None

    def result(self) -> WorkflowRow | None:
        if self.error is not None:
            raise self.error
        return self.row


class RowReads:
    """`read(workflow_id)`: the workflow's row now (read after the call began), or None.

    The first caller to find no read in flight becomes the reader: it takes every id asked for
    so far and reads them in one query. Callers that come while a read is in flight wait for
    the next one (their ids may have been read before they asked), which one of them makes.
    A failed read fails every caller of that batch with its error.
    """

    def __init__(self, read_many: ReadMany, max_batch: int = 1000) -> None:
        self._read_many = read_many
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: dict[str, list[_Slot]] = defaultdict(list)
        self._reading = False
        self.reads = 0  # queries made, for tests and benchmarks

    @property
    def waiting(self) -> int:
        """Ids asked for and not yet taken into a read."""
        with self._cond:
            return len(self._pending)

    def read(self, workflow_id: str) -> WorkflowRow | None:
        slot = _Slot()
        with self._cond:
            self._pending[workflow_id].append(slot)
            while not slot.done and self._reading:
                self._cond.wait()
            if slot.done:
                return slot.result()
            self._reading = True
            batch = self._take_batch(workflow_id)
        rows: dict[str, WorkflowRow] = {}
        error: BaseException | None = None
        try:
            rows = self._read_many(list(batch))
        except BaseException as exc:  # whatever it is, the batch's callers must hear of it
            error = exc
        finally:
            with self._cond:
                self.reads += 1
                for read_id, slots in batch.items():
                    for waiting in slots:
                        waiting.done, waiting.row, waiting.error = True, rows.get(read_id), error
                self._reading = False
                self._cond.notify_all()
        return slot.result()

    def _take_batch(self, own: str) -> dict[str, list[_Slot]]:
        """The reader's own id and the oldest others, up to the batch's size."""
        others = [read_id for read_id in self._pending if read_id != own]
        ids = [own, *others[: self._max_batch - 1]]
        return {read_id: self._pending.pop(read_id) for read_id in ids}

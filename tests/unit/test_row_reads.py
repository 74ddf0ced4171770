"""Workflow rows for executions that start together come back from one query."""

import threading
from collections.abc import Collection

import pytest

from services.worker.fleet import WorkflowRow
from services.worker.row_reads import RowReads
from tests.support.polling import wait_for


def _row(workflow_id: str) -> WorkflowRow:
    return WorkflowRow("PENDING", int(workflow_id.split("-")[1]), None, 1, f"xid-{workflow_id}")


class Database:
    """Rows for every id but "missing"; the first read can be held until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.release = threading.Event()
        if not hold_first:
            self.release.set()
        self.entered = threading.Event()
        self.fail_next = False

    def read_many(self, ids: Collection[str]) -> dict[str, WorkflowRow]:
        self.batches.append(list(ids))
        self.entered.set()
        assert self.release.wait(10)
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database unreachable")
        return {i: _row(i) for i in ids if i != "missing"}


def _read_in_threads(
    reads: RowReads, ids: list[str]
) -> tuple[list[threading.Thread], dict[str, object]]:
    results: dict[str, object] = {}

    def read(workflow_id: str) -> None:
        try:
            results[workflow_id] = reads.read(workflow_id)
        except Exception as exc:
            results[workflow_id] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    return threads, results


def _read_during_a_held_read(
    database: Database, reads: RowReads, ids: list[str]
) -> tuple[dict[str, object], dict[str, object]]:
    """Hold a first read of "wf-0", ask for `ids` meanwhile, then let every read finish;
    returns (the first read's result, the others')."""
    first, first_result = _read_in_threads(reads, ["wf-0"])
    assert database.entered.wait(10)
    others, results = _read_in_threads(reads, ids)
    # Every later id waits for the read after the one in flight (it may have missed it).
    wait_for(lambda: reads.waiting == len(ids), timeout=10, what="every execution waiting")
    database.release.set()
    for thread in first + others:
        thread.join(10)
    return first_result, results


def test_a_lone_execution_reads_its_row_in_one_query() -> None:
    database = Database()
    reads = RowReads(database.read_many)
    assert reads.read("wf-1") == _row("wf-1")
    assert reads.read("missing") is None
    assert database.batches == [["wf-1"], ["missing"]]


def test_executions_that_ask_during_a_read_share_the_next_one() -> None:
    database = Database(hold_first=True)
    reads = RowReads(database.read_many)
    ids = [f"wf-{i}" for i in range(1, 21)]
    first_result, results = _read_during_a_held_read(database, reads, ids)
    assert first_result == {"wf-0": _row("wf-0")}
    assert results == {i: _row(i) for i in ids}
    assert database.batches[0] == ["wf-0"]
    assert sorted(database.batches[1]) == sorted(ids)
    assert reads.reads == len(database.batches) == 2


def test_a_failed_read_fails_its_batch_and_the_next_read_works() -> None:
    database = Database(hold_first=True)
    database.fail_next = True
    reads = RowReads(database.read_many)
    threads, results = _read_in_threads(reads, ["wf-1"])
    assert database.entered.wait(10)
    database.release.set()
    threads[0].join(10)
    assert isinstance(results["wf-1"], ConnectionError)
    assert reads.read("wf-2") == _row("wf-2")


def test_a_batch_is_bounded_and_holds_the_reader_s_own_id() -> None:
    database = Database(hold_first=True)
    reads = RowReads(database.read_many, max_batch=4)
    ids = [f"wf-{i}" for i in range(1, 11)]
    _, results = _read_during_a_held_read(database, reads, ids)
    assert results == {i: _row(i) for i in ids}
    assert all(len(batch) <= 4 for batch in database.batches)
    assert sorted(i for batch in database.batches[1:] for i in batch) == sorted(ids)


@pytest.mark.parametrize("callers", [2, 8])
def test_the_same_workflow_asked_twice_gets_its_row_twice(callers: int) -> None:
    database = Database(hold_first=True)
    reads = RowReads(database.read_many)
    first, _ = _read_in_threads(reads, ["wf-0"])
    assert database.entered.wait(10)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(reads.read("wf-5"))) for _ in range(callers)
    ]
    for thread in threads:
        thread.start()
    wait_for(lambda: reads.waiting == 1, timeout=10, what="the execution waiting")
    database.release.set()
    for thread in first + threads:
        thread.join(10)
    assert results == [_row("wf-5")] * callers

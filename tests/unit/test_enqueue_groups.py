"""Concurrent enqueues go to the database together: one write for what arrived meanwhile."""

import asyncio
import threading
from collections.abc import Sequence
from typing import Any, cast

import pytest

from services.api.db_threads import DatabaseThreads
from services.api.enqueue_groups import EnqueueGroups
from services.api.enqueue_rows import Item, Written


def _item(name: str) -> Item:
    return ({"queue_name": "q", "workflow_name": "w", "workflow_id": name}, {})


class Recorder:
    """Writes nothing: records the batches it was given, and can hold one write open."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.fail: BaseException | None = None

    def __call__(self, batch: Sequence[Item]) -> list[Written]:
        self.hold.wait(10)
        ids = [str(options.get("workflow_id")) for options, _ in batch]
        self.batches.append(ids)
        if self.fail is not None:
            raise self.fail
        return [Written(i, created=True) for i in ids]


async def _until(condition: Any, timeout: float = 5) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_lone_enqueue_is_written_at_once_and_later_ones_together() -> None:
    async def main() -> None:
        write = Recorder()
        groups = EnqueueGroups(
            DatabaseThreads(4, wait_seconds=5), write, max_batch=3, max_writers=1
        )
        assert await groups.submit(_item("alone")) == Written("alone", created=True)
        write.hold.clear()  # the next write stays in flight while seven more requests come
        first = asyncio.create_task(groups.submit(_item("first")))
        await _until(lambda: write.batches == [["alone"]] and groups.writes == 1)
        await asyncio.sleep(0.05)
        later = [asyncio.create_task(groups.submit(_item(f"r{i}"))) for i in range(7)]
        await asyncio.sleep(0.05)
        write.hold.set()
        results = await asyncio.gather(first, *later)
        assert [r.workflow_id for r in results] == ["first"] + [f"r{i}" for i in range(7)]
        # In order of arrival, at most three per write; the ones that came during the held
        # write share writes instead of one write each.
        assert write.batches == [
            ["alone"],
            ["first"],
            ["r0", "r1", "r2"],
            ["r3", "r4", "r5"],
            ["r6"],
        ]

    asyncio.run(main())


def test_a_failed_write_fails_each_of_its_requests_and_the_next_write_goes_on() -> None:
    async def main() -> None:
        write = Recorder()
        groups = EnqueueGroups(
            DatabaseThreads(2, wait_seconds=5), write, max_batch=10, max_writers=1
        )
        write.hold.clear()
        blocker = asyncio.create_task(groups.submit(_item("blocker")))
        await _until(lambda: groups.writes == 0 and len(groups._writers) == 1)
        await asyncio.sleep(0.05)
        doomed = [asyncio.create_task(groups.submit(_item(f"d{i}"))) for i in range(3)]
        await asyncio.sleep(0.05)
        write.fail = ConnectionError("database went away")
        write.hold.set()
        for task in [blocker, *doomed]:
            with pytest.raises(ConnectionError, match="went away"):
                await task
        write.fail = None
        assert await groups.submit(_item("after")) == Written("after", created=True)

    asyncio.run(main())


def test_a_request_that_gives_up_before_its_write_leaves_nothing_behind() -> None:
    async def main() -> None:
        write = Recorder()
        groups = EnqueueGroups(
            DatabaseThreads(2, wait_seconds=5), write, max_batch=10, max_writers=1
        )
        write.hold.clear()
        in_flight = asyncio.create_task(groups.submit(_item("in-flight")))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await groups.submit(_item("gave-up"))
        kept = asyncio.create_task(groups.submit(_item("kept")))
        await asyncio.sleep(0.05)
        write.hold.set()
        assert (await in_flight).workflow_id == "in-flight"
        assert (await kept).workflow_id == "kept"
        assert write.batches == [["in-flight"], ["kept"]]

    asyncio.run(main())


class GatedThreads:
    """Runs each write on the event loop, finished only when the test opens its gate."""

    def __init__(self) -> None:
        self.gate: asyncio.Future[None] | None = None
        self.batches: list[list[str]] = []

    async def run(self, write: Any, batch: Sequence[Item]) -> list[Written]:
        self.batches.append([str(options.get("workflow_id")) for options, _ in batch])
        self.gate = asyncio.get_running_loop().create_future()
        await self.gate
        return [Written(str(options.get("workflow_id")), created=True) for options, _ in batch]


def test_a_request_that_gives_up_as_the_previous_write_ends_is_not_written() -> None:
    """Its deadline and the end of the write in flight fall in one turn of the event loop."""

    async def main() -> None:
        threads = GatedThreads()
        groups = EnqueueGroups(
            cast(DatabaseThreads, threads), Recorder(), max_batch=10, max_writers=1
        )
        first = asyncio.create_task(groups.submit(_item("first")))
        await _until(lambda: threads.gate is not None)
        late = asyncio.create_task(groups.submit(_item("gave-up")))
        await asyncio.sleep(0.01)
        assert threads.gate is not None
        threads.gate.set_result(None)  # the write ends, and in the same turn...
        late.cancel()  # ...the other request's deadline passes
        assert (await first).workflow_id == "first"
        with pytest.raises(asyncio.CancelledError):
            await late
        await asyncio.sleep(0.05)
        assert threads.batches == [["first"]]
        assert groups.writes == 1

    asyncio.run(main())


def test_a_stuck_write_leaves_the_other_writer_to_go_on() -> None:
    async def main() -> None:
        threads = GatedThreads()
        groups = EnqueueGroups(
            cast(DatabaseThreads, threads), Recorder(), max_batch=10, max_writers=2
        )
        stuck = asyncio.create_task(groups.submit(_item("stuck")))
        await _until(lambda: threads.gate is not None)
        held = threads.gate
        later = asyncio.create_task(groups.submit(_item("later")))
        await _until(lambda: threads.gate is not held)
        assert threads.gate is not None
        threads.gate.set_result(None)  # the second write ends; the first is still stuck
        assert (await later).workflow_id == "later"
        assert not stuck.done()
        assert held is not None
        held.set_result(None)
        assert (await stuck).workflow_id == "stuck"
        assert threads.batches == [["stuck"], ["later"]]

    asyncio.run(main())

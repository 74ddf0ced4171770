"""No more database threads than pooled connections, even when requests give up on them."""

import threading
import time
from collections.abc import Callable

import anyio
import pytest

from services.api.db_threads import DatabaseThreads


async def _until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await anyio.sleep(0.01)


def test_results_and_errors_pass_through_and_slots_come_back() -> None:
    async def main() -> None:
        threads = DatabaseThreads(2, wait_seconds=1)
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        with pytest.raises(LookupError):
            await threads.run(lambda: {"present": 1}["missing"])
        await _until(lambda: threads.busy == 0)

    anyio.run(main)


def test_an_abandoned_thread_keeps_its_slot_until_it_ends() -> None:
    async def main() -> None:
        threads = DatabaseThreads(1, wait_seconds=0.2)
        release = threading.Event()
        with pytest.raises(TimeoutError), anyio.fail_after(0.1):
            await threads.run(release.wait, 10)
        # The request gave up; its thread still runs (and would hold a pooled connection).
        assert threads.busy == 1
        with pytest.raises(TimeoutError, match="no database connection free"):
            await threads.run(lambda: "too early")
        release.set()
        await _until(lambda: threads.busy == 0)
        assert await threads.run(lambda: "after") == "after"

    anyio.run(main)


def test_waiting_for_a_slot_in_vain_takes_none() -> None:
    async def main() -> None:
        threads = DatabaseThreads(1, wait_seconds=0.1)
        release = threading.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(threads.run, release.wait, 10)
            await _until(lambda: threads.busy == 1)
            for _ in range(3):
                with pytest.raises(TimeoutError):
                    await threads.run(lambda: None)
            assert threads.busy == 1
            release.set()
        assert threads.busy == 0

    anyio.run(main)

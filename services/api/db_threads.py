"""Blocking database work off the event loop, in no more threads than the pool has connections.

Requests beyond that wait in the event loop, not as threads blocked on a pool checkout and
contending for the GIL (under 64 connections that cost a fifth of the throughput). A thread
holds its slot until its work has ended, not until its request gave up: a request past its
deadline answers at once while its thread finishes on its own, and the slot stays taken until
then, since the thread still holds a connection.
"""

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class DatabaseThreads:
    def __init__(self, slots: int, wait_seconds: float) -> None:
        self._slots = anyio.CapacityLimiter(slots)
        # How long a request waits for a slot: as long as for a pooled connection.
        self._wait_seconds = wait_seconds

    @property
    def busy(self) -> int:
        """Slots taken: threads running, or about to."""
        return int(self._slots.borrowed_tokens)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a thread once a slot is free; TimeoutError when none frees in time.

        Cancelling the caller abandons the thread (it runs on); its slot is given back when
        it ends, or at once if it never started.
        """
        borrower = object()
        with anyio.move_on_after(self._wait_seconds) as waiting:
            await self._slots.acquire_on_behalf_of(borrower)
        if waiting.cancelled_caught:
            raise TimeoutError("no database connection free in time")
        loop = asyncio.get_running_loop()
        lock = threading.Lock()
        state = {"started": False, "abandoned": False}

        def give_back() -> None:
            self._slots.release_on_behalf_of(borrower)

        def work() -> T:
            with lock:
                if state["abandoned"]:
                    # Its caller gave up before it began, and nobody reads the result.
                    raise asyncio.CancelledError
                state["started"] = True
            try:
                return fn(*args)
            finally:
                # RuntimeError: the loop has closed, and nothing waits for the slot any more.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(give_back)

        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except BaseException:
            with lock:
                never_started = not state["started"]
                state["abandoned"] = never_started
            if never_started:
                give_back()
            raise

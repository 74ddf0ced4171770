"""Group commit: what concurrent requests write (the enqueues' workflows, the audit log's rows),
written in one transaction.

Each request hands its workflow in and awaits its own outcome. When no write is in flight, one
starts at once with everything waiting; requests that come meanwhile wait in the event loop (not
in threads, and holding no connection) and go together in the next write. A request alone is
written at once, as without batching; under load one transaction and two statements carry many
requests' workflows (enqueue_rows), where each used to cost its own transaction and statements.
"""

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from services.api.db_threads import DatabaseThreads

# What one request writes, and what the write gives it back.
T = TypeVar("T")
R = TypeVar("R")


class EnqueueGroups(Generic[T, R]):
    """Up to `max_writers` writes in flight at once, each of up to `max_batch` workflows.

    More than one writer: a write stuck on a connection (a server gone without a word, until
    the socket's timeout) leaves the others to go on, and one write goes to the database while
    the next group gathers.
    """

    def __init__(
        self,
        threads: DatabaseThreads,
        write_many: Callable[[Sequence[T]], list[R]],
        max_batch: int,
        max_writers: int,
    ) -> None:
        self._threads = threads
        self._write_many = write_many
        self._max_batch = max_batch
        self._max_writers = max_writers
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.writes = 0  # transactions committed, for tests and benchmarks

    async def submit(self, item: T) -> R:
        """The workflow written, in a transaction that began after the call.

        A caller that gives up (cancelled, as by its request's deadline) before its workflow
        was taken into a write leaves nothing behind; once taken, the write goes on without it.
        A failed write fails each of its callers with its error.
        """
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, future)
        self._pending.append(entry)
        if len(self._writers) < self._max_writers:
            # In a context of its own: it writes for many requests, and must not log under
            # the request id of the one that happened to start it.
            writer = asyncio.create_task(self._write_while_pending(), context=contextvars.Context())
            self._writers.add(writer)
        try:
            return await future
        finally:
            # Given up (the await cancels the future too): out of the queue if still there.
            if future.cancelled() or not future.done():
                with contextlib.suppress(ValueError):  # taken into a write already
                    self._pending.remove(entry)

    async def _write_while_pending(self) -> None:
        this = asyncio.current_task()
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                # Callers that gave up in the same turn of the loop (their cleanup not run yet).
                batch = [(item, future) for item, future in batch if not future.done()]
                if not batch:
                    continue
                try:
                    written = await self._threads.run(self._write_many, [i for i, _ in batch])
                    if len(written) != len(batch):
                        raise RuntimeError(f"{len(written)} written for {len(batch)} workflows")
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                self.writes += 1
                for (_, future), result in zip(batch, written, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            # At once, before any caller can look: one that came since sees the room it left.
            self._writers.discard(this)

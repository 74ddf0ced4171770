"""The worker's background duties: heartbeat, recovery of dead workers' work, and retention.

Every worker heartbeats, on a thread of its own so slow housekeeping can never make a live
worker look dead. Recovery and retention run on whichever worker takes the database lock first,
so the fleet does each job once per interval however many workers there are.
"""

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services import contract
from services.worker.fleet import FleetStore
from services.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


@dataclass
class _Duty:
    name: str
    interval_seconds: float
    # Returns True when there is more to do right away (a full retention batch).
    run: Callable[[], bool]
    due: float = 0.0


def _run_duties(duties: list[_Duty], stop: threading.Event) -> None:
    while not stop.is_set():
        for duty in duties:
            if time.monotonic() < duty.due:
                continue
            try:
                more = duty.run()
            except Exception as exc:
                # The database may be down: keep going, the next round retries.
                reason = str(exc).splitlines()[0][:200] if str(exc) else ""
                logger.warning(
                    "fleet.%s_failed error=%s reason=%s", duty.name, type(exc).__name__, reason
                )
                more = False
            duty.due = time.monotonic() + (0 if more else duty.interval_seconds)
        stop.wait(max(0.0, min(duty.due for duty in duties) - time.monotonic()))


class Maintenance:
    def __init__(self, store: FleetStore, settings: WorkerSettings) -> None:
        self._store = store
        self._settings = settings
        self._hostname = socket.gethostname()
        self._stop = threading.Event()
        # Monotonic time since which heartbeats have succeeded without a break, or None.
        self._healthy_since: float | None = None
        janitor = [_Duty("recovery", settings.reaper_interval_seconds, self._recover)]
        if settings.retention_seconds > 0:
            janitor.append(_Duty("retention", settings.retention_interval_seconds, self._retain))
        heartbeat = [_Duty("heartbeat", settings.heartbeat_interval_seconds, self._heartbeat)]
        self._threads = [
            threading.Thread(target=_run_duties, args=(duties, self._stop), name=name, daemon=True)
            for name, duties in (("fleet-heartbeat", heartbeat), ("fleet-janitor", janitor))
        ]

    def register(self) -> None:
        """Join the fleet before DBOS launches (and may claim work): the reaper must know us."""
        settings = self._settings
        if settings.run_migrations:
            self._store.create_schema()
        self._store.register(settings.executor_id, settings.application_version, self._hostname)
        self._healthy_since = time.monotonic()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def _heartbeat(self) -> bool:
        settings = self._settings
        try:
            if not self._store.heartbeat(settings.executor_id) and not self._stop.is_set():
                # Our row is gone (forgotten after a very long outage): join again.
                self._store.register(
                    settings.executor_id, settings.application_version, self._hostname
                )
        except Exception:
            self._healthy_since = None
            raise
        if self._healthy_since is None:
            self._healthy_since = time.monotonic()
        return False

    def _recover(self) -> bool:
        # Judge others only after a grace period of our own unbroken heartbeats: right after a
        # database outage everyone's heartbeat is stale, and live workers must not be robbed.
        grace = self._settings.executor_grace_seconds
        healthy_since = self._healthy_since
        if healthy_since is None or time.monotonic() - healthy_since < grace:
            return False
        recovered = self._store.recover_orphans(contract.QUEUE_NAME, int(grace * 1000))
        logger.debug("fleet.recovery_ran recovered=%s", recovered)
        if recovered:
            logger.warning("fleet.recovered_orphans workflows=%d", recovered)
        return False

    def _retain(self) -> bool:
        settings = self._settings
        deleted = self._store.delete_finished(
            contract.WORKFLOW_NAME,
            int(settings.retention_seconds * 1000),
            settings.retention_batch_size,
        )
        if deleted:
            logger.info("fleet.retention_deleted workflows=%d", deleted)
        return deleted == settings.retention_batch_size

"""The worker's background duties: heartbeat, recovery of dead workers' work, and retention.

Every worker heartbeats on a thread and a database connection of its own, so busy workflows or
slow housekeeping never make a live worker look dead. Recovery and retention run on whichever
worker takes each job's database lock first, so the fleet does each once per interval however
many workers there are.
"""

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from services.contract import logs
from services.contract.fleet import CLOCK_SLACK_MS
from services.contract.registry import Registry
from services.worker.executions import Executions
from services.worker.fleet import FleetStore
from services.worker.retention import Retention
from services.worker.settings import WorkerSettings

log = logs.get_logger(__name__)

# A resume trusts a heartbeat only from CLOCK_SLACK_MS after the cancel: beat again past it.
FOLLOW_UP_SECONDS = CLOCK_SLACK_MS / 1000 + 0.2


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else ""


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
                log.warning(
                    f"fleet.{duty.name}_failed", error=type(exc).__name__, reason=_reason(exc)
                )
                more = False
            duty.due = time.monotonic() + (0 if more else duty.interval_seconds)
        stop.wait(max(0.0, min(duty.due for duty in duties) - time.monotonic()))


class Maintenance:
    def __init__(
        self,
        store: FleetStore,
        retention: Retention,
        settings: WorkerSettings,
        executions: Executions,
        registry: Registry,
    ) -> None:
        # Every queue and type of the registry, not only those this worker serves: any live
        # worker can put a dead one's work back on its queue, or delete old history.
        self._queues = sorted(registry.queues)
        self._workflow_names = sorted(registry.workflows)
        self._store = store
        self._retention = retention
        self._settings = settings
        self._executions = executions
        self._hostname = socket.gethostname()
        self._stop = threading.Event()
        self._wake = threading.Event()
        # Monotonic end of the last heartbeat that succeeded, and of the first of the run of
        # heartbeats without a gap that it closes (None: no such run).
        self._last_beat: float | None = None
        self._healthy_since: float | None = None
        # When to heartbeat again after a nudge, sooner than the interval; None: no need.
        self._follow_up: float | None = None
        self._follow_up_lock = threading.Lock()
        janitor = [_Duty("recovery", settings.reaper_interval_seconds, self._recover)]
        if settings.retention_seconds > 0:
            janitor.append(_Duty("retention", settings.retention_interval_seconds, self._retain))
        self._threads = [
            threading.Thread(target=self._beat_forever, name="fleet-heartbeat", daemon=True),
            threading.Thread(
                target=_run_duties, args=(janitor, self._stop), name="fleet-janitor", daemon=True
            ),
        ]

    def register(self) -> None:
        """Join the fleet before DBOS launches (and may claim work): the reaper must know us."""
        settings = self._settings
        self._store.register(
            settings.executor_id,
            settings.application_version,
            self._hostname,
            grace_ms=int(settings.executor_grace_seconds * 1000),
        )
        self._last_beat = self._healthy_since = time.monotonic()

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads, waiting a moment at most: one may hang on the database, and a
        late heartbeat never revives an executor marked stopped."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def nudge(self) -> None:
        """Heartbeat now, and once more past the clock slack, rather than at the next interval:
        a cancelled execution ended, and a resume waits for a heartbeat the clock slack after
        the cancel that no longer lists it."""
        with self._follow_up_lock:
            self._follow_up = time.monotonic() + FOLLOW_UP_SECONDS
        self._wake.set()

    def healthy(self) -> bool:
        """Whether a heartbeat succeeded recently: false while the database is down or hangs."""
        last = self._last_beat
        return (
            last is not None and time.monotonic() - last <= self._settings.heartbeat_max_gap_seconds
        )

    def _beat_forever(self) -> None:
        interval = self._settings.heartbeat_interval_seconds
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._heartbeat()
            except Exception as exc:
                self._healthy_since = None
                log.warning("fleet.heartbeat_failed", error=type(exc).__name__, reason=_reason(exc))
            with self._follow_up_lock:
                due = started + interval
                if self._follow_up is not None:
                    if self._follow_up <= started:  # this beat was the follow-up
                        self._follow_up = None
                    else:
                        due = min(due, self._follow_up)
            self._wake.wait(max(0.0, due - time.monotonic()))
            self._wake.clear()

    def _heartbeat(self) -> None:
        settings = self._settings
        max_gap_ms = int(settings.heartbeat_max_gap_seconds * 1000)
        running = self._executions.snapshot
        beat = self._store.heartbeat(settings.executor_id, max_gap_ms, running)
        if not beat and not self._stop.is_set():
            # Our row is gone (forgotten after a very long outage): join again.
            self._store.register(
                settings.executor_id,
                settings.application_version,
                self._hostname,
                running,
                int(settings.executor_grace_seconds * 1000),
            )
        # Measured between the ends of good heartbeats: one that hung through a stall ends
        # late, and proves nothing about the time it hung.
        ended, last = time.monotonic(), self._last_beat
        if (
            last is None
            or self._healthy_since is None
            or ended - last > settings.heartbeat_max_gap_seconds
        ):
            self._healthy_since = ended
        self._last_beat = ended

    def _recover(self) -> bool:
        # Judge others only after a grace period of our own unbroken heartbeats: right after a
        # database outage or stall everyone's heartbeat is stale, and live workers must not be
        # robbed. The database checks the same of our row in the recovery's own transaction.
        settings = self._settings
        since = self._healthy_since
        if not self.healthy() or since is None:
            log.debug("fleet.recovery_skipped", reason="unhealthy")
            return False
        if time.monotonic() - since < settings.executor_grace_seconds:
            log.debug("fleet.recovery_skipped", reason="warming_up")
            return False
        result = self._store.recover_orphans(
            self._queues,
            settings.executor_id,
            int(settings.executor_grace_seconds * 1000),
            int(settings.heartbeat_max_gap_seconds * 1000),
        )
        if isinstance(result, str):
            log.debug("fleet.recovery_skipped", reason=result)
        else:
            log.debug("fleet.recovery_ran", recovered=result)
            if result:
                log.warning("fleet.recovered_orphans", workflows=result)
        return False

    def _retain(self) -> bool:
        settings = self._settings
        deleted = self._retention.delete_finished(
            self._workflow_names,
            int(settings.retention_seconds * 1000),
            settings.retention_batch_size,
        )
        if deleted:
            log.info("fleet.retention_deleted", workflows=deleted)
        # The audit log is kept as long as the workflows it speaks of.
        audited = self._retention.delete_audit(
            int(settings.retention_seconds * 1000), settings.retention_batch_size
        )
        if audited:
            log.info("fleet.retention_deleted", audit_rows=audited)
        batch = settings.retention_batch_size
        return deleted == batch or audited == batch

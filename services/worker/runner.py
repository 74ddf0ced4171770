"""Worker lifecycle: launch DBOS, register the queue, wait for a stop signal, drain, exit."""

import logging
import os
import signal
import threading
from types import FrameType

from dbos import DBOS, DBOSConfig

from services import contract
from services.worker import fleet, workflows  # noqa: F401  (workflows: registers before launch)
from services.worker.maintenance import Maintenance
from services.worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


def dbos_config(settings: WorkerSettings) -> DBOSConfig:
    return {
        "name": contract.APP_NAME,
        "system_database_url": settings.database_url,
        "application_version": settings.application_version,
        "executor_id": settings.executor_id,
        "sys_db_pool_size": settings.db_pool_size,
        "log_level": settings.log_level,
    }


class StopSignal:
    """The first SIGTERM/SIGINT asks for a drain; a second one exits at once."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            logger.warning("worker.forced_exit signal=%s", signal.Signals(signum).name)
            os._exit(128 + signum)
        logger.info("worker.stop_requested signal=%s", signal.Signals(signum).name)
        self.event.set()


def run(settings: WorkerSettings) -> None:
    stop = StopSignal()
    stop.install()
    engine = fleet.create_engine(settings.database_url)
    store = fleet.FleetStore(engine)
    maintenance = Maintenance(store, settings)
    DBOS(config=dbos_config(settings))
    DBOS.launch()  # creates or migrates DBOS's schema, then recovers this executor's own work
    maintenance.register()
    maintenance.start()
    # Always bounded: without worker_concurrency one worker claims the whole queue in one poll.
    DBOS.register_queue(
        contract.QUEUE_NAME,
        worker_concurrency=settings.worker_concurrency,
        polling_interval_sec=settings.polling_interval_seconds,
    )
    logger.info(
        "worker.ready executor_id=%s application_version=%s queue=%s worker_concurrency=%d",
        settings.executor_id,
        settings.application_version,
        contract.QUEUE_NAME,
        settings.worker_concurrency,
    )
    stop.event.wait()
    drain(settings, maintenance, store)
    engine.dispose()


def drain(settings: WorkerSettings, maintenance: Maintenance, store: fleet.FleetStore) -> None:
    """Stop taking work, let running workflows finish, then leave the fleet.

    DBOS.destroy() stops dequeuing at once and waits up to the drain timeout for in-flight
    workflows; heartbeats go on meanwhile so nobody takes that work away. What is still running
    afterwards stays PENDING under this executor id; marking the executor stopped lets the other
    workers' reaper put it back on the queue at once instead of after the grace period.
    Kubernetes must allow more than the drain timeout (terminationGracePeriodSeconds).
    """
    logger.info("worker.draining timeout_seconds=%d", settings.drain_timeout_seconds)
    DBOS.destroy(workflow_completion_timeout_sec=settings.drain_timeout_seconds)
    maintenance.stop()
    try:
        store.mark_stopped(settings.executor_id)
    except Exception as exc:
        logger.warning("worker.mark_stopped_failed error=%s", type(exc).__name__)
    logger.info("worker.stopped executor_id=%s", settings.executor_id)

"""Worker lifecycle: join the fleet, launch DBOS, register the queue, wait, drain, exit."""

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType

from dbos import DBOS, DBOSConfig

from services import contract
from services.worker import fleet, workflows  # noqa: F401  (workflows: registers before launch)
from services.worker.maintenance import Maintenance
from services.worker.metrics import METRICS
from services.worker.probes import ProbeServer
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
        # Migrations run (or were run) before launch: see run().
        "run_migrations": False,
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
    """Run until a stop signal, drain, and end the process (see drain() for why it must)."""
    stop = StopSignal()
    stop.install()
    probes = None
    if settings.probe_port:
        probes = ProbeServer(settings.probe_host, settings.probe_port, METRICS.registry)
        probes.start()
    if settings.run_migrations:
        DBOS.migrate(settings.database_url)  # creates the database too, if it is missing
    engine = fleet.create_engine(settings.database_url)
    store = fleet.FleetStore(engine)
    maintenance = Maintenance(store, settings)
    # Join the fleet before DBOS launches: its queue thread may claim work at once (queues are
    # stored in the database), and the reaper must never see a claim by an unknown executor.
    maintenance.register()
    maintenance.start()
    METRICS.row_reader = store.workflow_row
    METRICS.capacity.labels(contract.QUEUE_NAME).set(settings.worker_concurrency)
    DBOS(config=dbos_config(settings))
    try:
        DBOS.launch()
        # Always bounded: without worker_concurrency one worker claims the whole queue.
        DBOS.register_queue(
            contract.QUEUE_NAME,
            worker_concurrency=settings.worker_concurrency,
            polling_interval_sec=settings.polling_interval_seconds,
        )
        if probes is not None:
            probes.ready.set()
        logger.info(
            "worker.ready executor_id=%s application_version=%s queue=%s worker_concurrency=%d",
            settings.executor_id,
            settings.application_version,
            contract.QUEUE_NAME,
            settings.worker_concurrency,
        )
        stop.event.wait()
    finally:
        if probes is not None:
            probes.ready.clear()
        drain(settings, maintenance, store)
        if probes is not None:
            probes.stop()
        engine.dispose()
    _exit_now(0)


def drain(settings: WorkerSettings, maintenance: Maintenance, store: fleet.FleetStore) -> None:
    """Stop taking work, let running workflows finish, then leave the fleet.

    DBOS.destroy() stops dequeuing at once and waits up to the drain timeout for in-flight
    workflows, while heartbeats go on so nobody takes that work away. It does not stop what is
    still running after that: those steps go on in their threads. Marking the executor stopped
    lets the other workers' reaper put that work back on the queue at once, so the process must
    end right after it (run() does), or the same step would run here and elsewhere.
    Kubernetes must allow the drain timeout plus a little (terminationGracePeriodSeconds).
    """
    logger.info("worker.draining timeout_seconds=%d", settings.drain_timeout_seconds)
    DBOS.destroy(workflow_completion_timeout_sec=settings.drain_timeout_seconds)
    maintenance.stop()
    try:
        store.mark_stopped(settings.executor_id)
    except Exception as exc:
        logger.warning("worker.mark_stopped_failed error=%s", type(exc).__name__)
    logger.info("worker.stopped executor_id=%s host=%s", settings.executor_id, socket.gethostname())


def _exit_now(code: int) -> None:
    """End the process without waiting for workflow threads DBOS left running."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

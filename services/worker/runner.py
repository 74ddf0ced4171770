"""Worker lifecycle: join the fleet, launch DBOS, register its queues, wait, drain, exit."""

import logging
import os
import signal
import socket
import sys
import threading
from types import FrameType
from typing import Any

from dbos import DBOS, DBOSConfig

from services import contract
from services.contract import dbos_tables, logs, tracing
from services.contract.registry import Registry
from services.worker import database, fleet_schema
from services.worker.deletion_cost import DeletionCost
from services.worker.executions import EXECUTIONS
from services.worker.fleet import FleetStore
from services.worker.maintenance import Maintenance
from services.worker.metrics import METRICS
from services.worker.probes import ProbeServer, Readiness
from services.worker.retention import Retention
from services.worker.row_reads import RowReads
from services.worker.settings import WorkerSettings

log = logs.get_logger(__name__)

# Bound on what housekeeping (recovery, retention, metric reads) waits for in the database.
FLEET_TIMEOUT_SECONDS = 5.0


def dbos_config(settings: WorkerSettings) -> DBOSConfig:
    return {
        # DBOS's spans of workflows and steps, through the provider tracing.configure() set
        # (no endpoint of DBOS's own: one exporter, the standard variables).
        "enable_otlp": tracing.enabled(),
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
            log.warning("worker.forced_exit", signal=signal.Signals(signum).name)
            os._exit(128 + signum)
        log.info("worker.stop_requested", signal=signal.Signals(signum).name)
        self.event.set()


def run(
    settings: WorkerSettings,
    registry: Registry,
    options: dict[str, dict[str, Any]],
    deletion_cost: DeletionCost | None = None,
) -> None:
    """Serve the queues of `options` (each queue's register_queue arguments) until a stop
    signal, drain, and end the process (see drain() for why it must). Their workflows' modules
    are imported already (services.worker.serving). `deletion_cost`, given, keeps the pod's
    deletion cost until the drain."""
    queues = sorted(options)
    stop = StopSignal()
    stop.install()
    readiness = Readiness()
    probes = None
    if settings.probe_port:
        probes = ProbeServer(settings.probe_host, settings.probe_port, METRICS.registry, readiness)
        probes.start()
    if settings.run_migrations:
        DBOS.migrate(settings.database_url)  # creates the database too, if it is missing
    store, retention = _fleet(settings)
    maintenance = Maintenance(store, retention, settings, EXECUTIONS, registry)
    EXECUTIONS.on_lost = maintenance.nudge
    readiness.database_reachable = maintenance.healthy
    # Join the fleet before DBOS launches: its queue thread may claim work at once (queues are
    # stored in the database), and the reaper must never see a claim by an unknown executor.
    maintenance.register()
    maintenance.start()
    if deletion_cost is not None:
        EXECUTIONS.on_change = deletion_cost.changed
        deletion_cost.start()
    METRICS.row_reader = EXECUTIONS.read_row = RowReads(store.workflow_rows).read
    for name in queues:
        METRICS.serve(name, options[name]["worker_concurrency"])
    tracing.configure(
        "worker", settings.application_version, **{"service.instance.id": settings.executor_id}
    )
    DBOS(config=dbos_config(settings))
    # Only these queues: without it DBOS dequeues from every queue in the database, including
    # other pools' queues, whose code this image may not have.
    DBOS.listen_queues(queues)
    try:
        DBOS.launch()
        for name in queues:
            # Always bounded: without worker_concurrency one worker claims the whole queue.
            DBOS.register_queue(name, **options[name])
        readiness.launched.set()
        log.info(
            "worker.ready",
            executor_id=settings.executor_id,
            application_version=settings.application_version,
            queues=",".join(queues),
        )
        stop.event.wait()
    finally:
        readiness.launched.clear()
        if deletion_cost is not None:
            deletion_cost.stop()
        drain(settings, maintenance, store, probes)
    _exit_now(0)


def _fleet(settings: WorkerSettings) -> tuple[FleetStore, Retention]:
    """The fleet's tables, created or upgraded here unless migrations are someone else's."""
    heartbeat_engine = database.create_engine(
        settings.database_url,
        pool_size=1,
        timeout_seconds=settings.heartbeat_timeout_seconds,
        name="heartbeat",
    )
    engine = database.create_engine(
        settings.database_url, pool_size=2, timeout_seconds=FLEET_TIMEOUT_SECONDS
    )
    schema_engine = dbos_tables.with_schemas(engine)
    if settings.run_migrations:
        fleet_schema.report(schema_engine, fleet_schema.upgrade(schema_engine))
    else:
        fleet_schema.check(schema_engine)
    return FleetStore(heartbeat_engine, engine), Retention(engine)


def drain(
    settings: WorkerSettings,
    maintenance: Maintenance,
    store: FleetStore,
    probes: ProbeServer | None,
) -> None:
    """Stop taking work, let running workflows finish, then leave the fleet.

    DBOS.destroy() stops dequeuing at once and waits up to the drain timeout for in-flight
    workflows, while heartbeats go on so nobody takes that work away. It does not stop what is
    still running after that: those steps go on in their threads. Marking the executor stopped
    lets the other workers' reaper put that work back on the queue at once, so the process must
    end right after it (run() does), or the same step would run here and elsewhere: everything
    else is shut before, and marking is bounded in time, so a hanging database cannot keep the
    process alive.
    Kubernetes must allow the drain timeout plus a little (terminationGracePeriodSeconds).
    """
    log.info("worker.draining", timeout_seconds=settings.drain_timeout_seconds)
    DBOS.destroy(workflow_completion_timeout_sec=settings.drain_timeout_seconds)
    # The drained workflows' last spans, before the executor is marked stopped (after that the
    # process must end at once) and within a bound (the pod's grace counts it).
    tracing.flush()
    maintenance.stop()
    if probes is not None:
        probes.stop()
    marker = threading.Thread(
        target=_mark_stopped, args=(store, settings.executor_id), name="mark-stopped", daemon=True
    )
    marker.start()
    marker.join(timeout=settings.heartbeat_timeout_seconds + 1)
    log.info("worker.stopped", executor_id=settings.executor_id, host=socket.gethostname())


def _mark_stopped(store: FleetStore, executor_id: str) -> None:
    try:
        store.mark_stopped(executor_id)
    except Exception as exc:
        log.warning("worker.mark_stopped_failed", error=type(exc).__name__)


def _exit_now(code: int) -> None:
    """End the process without waiting for workflow threads DBOS left running."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""Entry point: `python -m services.worker` runs a worker; `... migrate` prepares the database;
`... versions` says which application versions' workers can be removed."""

import argparse
import sys

from dbos import DBOS, DBOSClient

from services.contract import APP_NAME, dbos_tables, logs
from services.contract import registry as workflow_registry
from services.contract.registry import Registry
from services.worker import database, deletion_cost, fleet_schema, serving, versions
from services.worker.executions import EXECUTIONS
from services.worker.metrics import METRICS
from services.worker.runner import run
from services.worker.settings import WorkerSettings

# DDL may wait for locks held by running workers' transactions.
MIGRATION_TIMEOUT_SECONDS = 60.0


def migrate(settings: WorkerSettings, registry: Registry, app_role: str | None) -> None:
    """Create or upgrade DBOS's schema and the fleet's table (what a deployment's Job runs)."""
    DBOS.migrate(settings.database_url, application_role=app_role)
    engine = database.create_engine(
        settings.database_url, pool_size=1, timeout_seconds=MIGRATION_TIMEOUT_SECONDS
    )
    try:
        found = fleet_schema.upgrade(dbos_tables.with_schemas(engine))
        fleet_schema.report(dbos_tables.with_schemas(engine), found)
        fleet_schema.set_audit_retention(
            dbos_tables.with_schemas(engine), int(settings.retention_seconds * 1000)
        )
        if app_role is not None and engine.dialect.name == "postgresql":
            fleet_schema.grant(engine, app_role)
    finally:
        engine.dispose()
    register_queues(settings, registry)


def register_queues(settings: WorkerSettings, registry: Registry) -> None:
    """Register the registry's queues as declared (workers register theirs again at start,
    with their overrides; the chart writes each pool's sizing into the registry itself).

    A queue's load is reported only once it is registered (the load divides by
    worker_concurrency): a pool scaled to zero has no worker to register it, and KEDA, reading
    no load, would never wake one.
    """
    client = DBOSClient(system_database_url=settings.database_url, application_name=APP_NAME)
    try:
        for name, spec in sorted(registry.queues.items()):
            client.register_queue(name, **spec.dbos_options())
    finally:
        client.destroy()


def set_latest_version(settings: WorkerSettings, version: str) -> None:
    """Make `version` the latest: work enqueued without a version goes to its workers only.

    Needed after a rollback: DBOS's "latest" is the version registered most recently, and
    re-registering an old one never makes it latest again.
    """
    client = DBOSClient(system_database_url=settings.database_url, application_name=APP_NAME)
    try:
        known = [v["version_name"] for v in client.list_application_versions()]
        if version not in known:
            listed = ", ".join(known) or "none"
            raise ValueError(f"no worker has run version {version!r}; known versions: {listed}")
        client.set_latest_application_version(version)
    finally:
        client.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.worker")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run a worker (the default)")
    migrate_parser = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate_parser.add_argument("--app-role", help="database role the services run as")
    latest_parser = commands.add_parser(
        "set-latest-version", help="make a version the latest (after a rollback)"
    )
    latest_parser.add_argument("version")
    versions_parser = commands.add_parser(
        "versions", help="each version's remaining work and live workers: which can be removed"
    )
    versions_parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        settings = WorkerSettings.from_env()
        registry = workflow_registry.load()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logs.configure(
        settings.log_level,
        settings.log_format,
        service="worker",
        executor_id=settings.executor_id,
        application_version=settings.application_version,
    )
    log = logs.get_logger(__name__)
    if args.command == "migrate":
        migrate(settings, registry, args.app_role)
    elif args.command == "versions":
        print(versions.render(versions.report(settings), args.json))
    elif args.command == "set-latest-version":
        try:
            set_latest_version(settings, args.version)
        except ValueError as exc:
            log.error("worker.command_refused", command=args.command, reason=str(exc))
            return 2
        log.info("worker.latest_version_set", version=args.version)
    else:
        try:
            queues = serving.served_queues(settings, registry)
            options = {
                name: serving.queue_options(settings, registry.queues[name]) for name in queues
            }
            serving.import_workflows(registry, queues)
            cost = deletion_cost.from_settings(
                settings,
                EXECUTIONS.count,
                METRICS.deletion_cost_patches,
                METRICS.deletion_cost,
            )
        except ValueError as exc:
            log.error("worker.not_started", reason=str(exc))
            return 2
        run(settings, registry, options, cost)
    return 0


if __name__ == "__main__":
    sys.exit(main())

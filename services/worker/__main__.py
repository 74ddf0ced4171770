"""Entry point: `python -m services.worker` runs a worker; `... migrate` prepares the database."""

import argparse
import logging
import sys

from dbos import DBOS

from services.worker import fleet
from services.worker.runner import run
from services.worker.settings import WorkerSettings


def migrate(settings: WorkerSettings, app_role: str | None) -> None:
    """Create or upgrade DBOS's schema and the fleet's table (what a deployment's Job runs)."""
    DBOS.migrate(settings.database_url, application_role=app_role)
    engine = fleet.create_engine(settings.database_url)
    try:
        store = fleet.FleetStore(engine)
        store.create_schema()
        if app_role is not None and engine.dialect.name == "postgresql":
            store.grant(app_role)
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.worker")
    parser.add_argument("command", nargs="?", choices=["run", "migrate"], default="run")
    parser.add_argument("--app-role", help="migrate: database role the services run as")
    args = parser.parse_args(argv)
    try:
        settings = WorkerSettings.from_env()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if args.command == "migrate":
        migrate(settings, args.app_role)
        logging.getLogger(__name__).info("worker.migrated")
    else:
        run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: `python -m services.worker`."""

import logging
import sys

from services.worker.runner import run
from services.worker.settings import WorkerSettings


def main() -> int:
    try:
        settings = WorkerSettings.from_env()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

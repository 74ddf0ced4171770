"""Entry point: `python -m services.api` serves the API with uvicorn."""

import logging
import sys

import uvicorn

from services.api.app import create_app
from services.api.settings import ApiSettings


def main() -> int:
    try:
        settings = ApiSettings.from_env()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Entry point: `python -m services.api` serves the API with uvicorn."""

import logging
import os
import shutil
import sys
import tempfile

from services.api.settings import ApiSettings
from services.contract import registry


def _share_metrics_between_processes() -> None:
    """Point prometheus_client at one directory for all uvicorn processes, emptied at start.

    Must happen before anything imports prometheus_client, which reads the variable then.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="api-metrics-")


def main() -> int:
    try:
        settings = ApiSettings.from_env()
        # Checked here too, so a wrong registry stops the process with its reason at once
        # (each uvicorn process loads it again in create_app).
        registry.load()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if settings.workers > 1 or os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _share_metrics_between_processes()
    import uvicorn

    from services.api.http_protocol import NoDelayHttpToolsProtocol

    uvicorn.run(
        "services.api.app:create_app_from_env",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
        http=NoDelayHttpToolsProtocol,
        loop="uvloop",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

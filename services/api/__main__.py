"""Entry point: `python -m services.api` serves the API with uvicorn."""

import os
import shutil
import sys
import tempfile

from services.api import auth, credentials
from services.api.settings import ApiSettings, configure_logs
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


def new_token(args: list[str]) -> int:
    """`python -m services.api new-token NAME ROLE`: a new token (shown once: give it to the
    client) and the line of the token file that admits it (only its digest)."""
    if len(args) != 2:
        print("usage: python -m services.api new-token NAME read|operate", file=sys.stderr)
        return 2
    try:
        token, line = auth.new_token(*args)
    except ValueError as exc:
        print(str(exc).replace("<new>, line 1: ", ""), file=sys.stderr)
        return 2
    print("# The token, for the client (shown once, kept nowhere):", file=sys.stderr)
    print(token)
    print(
        "# Its line for the token file (API_AUTH_TOKENS_FILE; the chart's auth Secret):",
        file=sys.stderr,
    )
    print(line)
    return 0


def main() -> int:
    if sys.argv[1:2] == ["new-token"]:
        return new_token(sys.argv[2:])
    try:
        settings = ApiSettings.from_env()
        # Checked here too, so a wrong registry, token file or keys file stops the process
        # with its reason at once (each uvicorn process loads them again in create_app).
        registry.load()
        credentials.identify_from(settings)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logs(settings)
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
        # Its lines go to the process's one stream (configure_logs); the access log is the
        # API's own (services.api.middleware), with the route and the request's id.
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        http=NoDelayHttpToolsProtocol,
        loop="uvloop",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

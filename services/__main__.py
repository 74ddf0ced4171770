"""`python -m services` (what `make run` does): the worker and the API together, for local use.

Each service runs as its own process, as in production. Ctrl-C stops both: the first asks
them to drain and exit, a second one forces them.
"""

import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from services.contract import logs

SERVICES = ("services.worker", "services.api")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
POLL_SECONDS = 0.2


def main() -> int:
    stop = threading.Event()

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.set()
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # Children get their own session so a terminal's Ctrl-C reaches them once, through us.
    children = [
        subprocess.Popen([sys.executable, "-m", module], start_new_session=True)
        for module in SERVICES
    ]
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    host, port = os.environ.get("API_HOST", "127.0.0.1"), os.environ.get("API_PORT", "8000")
    # In the services' format and level (they refuse values they don't know, and say why).
    log_format: logs.LogFormat = "json" if os.environ.get("LOG_FORMAT") == "json" else "text"
    level = os.environ.get("LOG_LEVEL", "INFO")
    logs.configure(level if level in LEVELS else "INFO", log_format, service="launcher")
    logs.get_logger(__name__).info(
        "local.started", api=f"http://{host}:{port}", worker_pid=children[0].pid, stop="Ctrl-C"
    )

    crashed = False
    while not stop.wait(POLL_SECONDS):
        if any(child.poll() is not None for child in children):
            crashed = True  # one service died: stop the other rather than run half a system
            forward(signal.SIGTERM, None)
    codes = [child.wait() for child in children]
    return 1 if crashed else max(codes)


if __name__ == "__main__":
    sys.exit(main())

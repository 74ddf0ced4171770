"""The project's images, built with podman (`make images-local`) and run from their filesystem.

No container runtime works on the machines the suite runs on (`podman run` does not), so a built
image is run as its config says, minus the namespaces: `podman image mount` gives its filesystem,
and chroot starts its entrypoint there as its user, with its environment and working directory.
"""

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support.processes import REPO_ROOT

BUILD_TIMEOUT_SECONDS = 480  # the base is made once (debootstrap, about 50 s), then reused
# The Makefile's BASE_IMAGE: tagged by the recipe that makes it.
BASE_IMAGE = (
    "localhost/dbos-queue-worker-base:bookworm-"
    + (hashlib.sha256((REPO_ROOT / "docker" / "local-base.sh").read_bytes()).hexdigest()[:12])
)


@dataclass(frozen=True)
class ImageConfig:
    """What an image's config tells a runtime (podman image inspect's "Config")."""

    user: str
    entrypoint: list[str]
    env: dict[str, str]
    working_dir: str
    labels: dict[str, str]


def build_images(image: str, version: str, log_path: Path) -> None:
    """`make images-local` with the given IMAGE and VERSION, as a person builds them.

    BUILDAH_LAYERS=false: every step runs, and no intermediate image is left behind once the
    tags are removed; only the local base is kept from one run to the next.
    """
    # GNU timeout signals make's whole process group (podman, debootstrap), which a timeout of
    # subprocess.run would leave running, tagging images after the test has cleaned up.
    command = ["timeout", "--kill-after=10", str(BUILD_TIMEOUT_SECONDS), "make", "images-local"]
    with open(log_path, "wb") as log:
        built = subprocess.run(
            [*command, f"LOCAL_IMAGE={image}", f"VERSION={version}"],
            cwd=REPO_ROOT,
            env={**os.environ, "BUILDAH_LAYERS": "false"},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    tail = log_path.read_text(errors="replace")[-4000:]
    timed_out = " (timed out)" if built.returncode == 124 else ""
    assert built.returncode == 0, f"make images-local failed{timed_out} ({log_path}):\n{tail}"


PODMAN_TIMEOUT_SECONDS = 120


def podman(*args: str) -> str:
    done = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=PODMAN_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"podman {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def inspect(image: str) -> ImageConfig:
    config = json.loads(podman("image", "inspect", image))[0]["Config"]
    return ImageConfig(
        user=config.get("User", ""),
        entrypoint=config.get("Entrypoint") or [],
        env=dict(item.split("=", 1) for item in config.get("Env") or []),
        working_dir=config.get("WorkingDir", ""),
        labels=config.get("Labels") or {},
    )


def remove_images(*images: str) -> None:
    """Remove these tags, if they exist, and the layers only they use."""
    existing = [image for image in images if podman_ok("image", "exists", image)]
    if existing:
        podman("rmi", "--force", *existing)


def podman_ok(*args: str) -> bool:
    done = subprocess.run(
        ["podman", *args], capture_output=True, check=False, timeout=PODMAN_TIMEOUT_SECONDS
    )
    return done.returncode == 0


@contextmanager
def mounted(image: str) -> Iterator[Path]:
    """The image's filesystem (read-only), unmounted on the way out."""
    root = Path(podman("image", "mount", image))
    try:
        yield root
    finally:
        # Never an assertion here: it would hide the error that brought the test this way.
        podman_ok("image", "unmount", image)


class ImageProcess:
    """The image's entrypoint (plus `args`) started from its mounted filesystem."""

    def __init__(
        self, root: Path, config: ImageConfig, env: dict[str, str], log_path: Path, *args: str
    ) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 (closed in stop)
        variables = [f"{name}={value}" for name, value in {**config.env, **env}.items()]
        # chroot changes user after entering the root; `env -i` leaves only the image's
        # environment and the test's, and resolves the entrypoint's program on the image's PATH.
        command = ["chroot", f"--userspec={config.user}", str(root), "env", "-i"]
        command += [f"--chdir={config.working_dir or '/'}", *variables, *config.entrypoint, *args]
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def uid(self) -> int:
        """The real uid of the process (chroot and env exec, so the pid is the program's)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])

    def run(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.stop()

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

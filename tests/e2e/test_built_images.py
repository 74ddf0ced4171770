"""Both images built for real (`make images-local`: podman on the local Debian base), checked
as Kubernetes relies on them, and run from their filesystem on PostgreSQL until /readyz answers."""

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from tests.support.images import (
    BASE_IMAGE,
    ImageConfig,
    ImageProcess,
    build_images,
    inspect,
    mounted,
    remove_images,
)
from tests.support.polling import wait_for
from tests.support.processes import free_port
from tests.support.tools import missing

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.requires_tool("podman", "debootstrap"),
    # The first run on a machine also makes the base image (debootstrap, about 50 s).
    pytest.mark.timeout(600),
]

APP_UID = 10001
VERSION = f"0.0.0-test.{uuid.uuid4().hex[:8]}"
# Build tools the final images must not carry: the venv's pip (the build removes it), a
# compiler, caches, the build's work directory.
BUILD_ONLY_PATHS = (
    "opt/venv/bin/pip",
    "opt/venv/bin/pip3",
    "usr/bin/gcc",
    "usr/bin/cc",
    "usr/bin/make",
    "root/.cache",
    "build",
)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Both targets, built under tags of this run; removed afterwards."""
    if os.geteuid() != 0:
        missing("building the images needs root (debootstrap, podman image mount)", "run as root")
    name = f"localhost/dbos-queue-worker-test-{uuid.uuid4().hex[:8]}"
    built = {target: f"{name}-{target}:{VERSION}" for target in ("api", "worker")}
    try:
        build_images(name, VERSION, tmp_path_factory.mktemp("images") / "build.log")
        yield built
    finally:
        remove_images(*built.values())


@pytest.mark.parametrize("target", ["api", "worker"])
def test_an_image_runs_its_service_as_pid_1_as_a_numeric_non_root_user(
    images: dict[str, str], target: str
) -> None:
    config = inspect(images[target])
    assert config.user == f"{APP_UID}:{APP_UID}"  # numeric: runAsNonRoot can verify it
    # Exec form, as written: a shell form would be ["/bin/sh", "-c", ...] with the shell as PID 1.
    assert config.entrypoint == ["python", "-m", f"services.{target}"]
    assert config.labels["org.opencontainers.image.version"] == VERSION
    assert config.labels["org.opencontainers.image.title"] == f"dbos-queue-worker-{target}"
    # Built on the local base here: the label says so, as it says the pinned one elsewhere.
    assert config.labels["org.opencontainers.image.base.name"] == BASE_IMAGE
    with mounted(images[target]) as root:
        # lexists: an absolute symlink in the image must not be followed into the host.
        assert os.path.lexists(root / "opt/venv/bin/python")
        shipped = [path for path in BUILD_ONLY_PATHS if os.path.lexists(root / path)]
        assert shipped == [], f"build-only paths in the {target} image"
        assert not os.path.lexists(root / "run/secrets/pip_cert")  # the build's CA bundle
        # None of the building machine's own files: its name and resolver at most as the
        # empty files a build leaves where it mounted them, and no install logs.
        leaked = [
            path
            for path in ("etc/hostname", "etc/resolv.conf")
            if os.path.lexists(root / path) and os.lstat(root / path).st_size
        ]
        assert leaked == [] and not any((root / "var/log").iterdir())


def wait_ready(url: str, process: ImageProcess) -> None:
    def ready() -> bool:
        assert process.process.poll() is None, f"exited early:\n{process.log()}"
        try:
            return httpx.get(f"{url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, timeout=90, interval=0.2, what=f"{url}/readyz ({process.log_path})")


def test_the_images_migrate_serve_and_answer_readyz_on_postgres(
    images: dict[str, str], new_database: Callable[[str], str], tmp_path: Path
) -> None:
    database = {"DBOS_SYSTEM_DATABASE_URL": new_database("postgres")}
    api_port, probe_port = free_port(), free_port()
    worker_env = {
        **database,
        "DBOS__VMID": "image-worker",
        "WORKER_RUN_MIGRATIONS": "false",  # as the chart runs it, after its migration Job
        "WORKER_PROBE_HOST": "127.0.0.1",
        "WORKER_PROBE_PORT": str(probe_port),
    }
    api_env = {**database, "API_HOST": "127.0.0.1", "API_PORT": str(api_port)}
    configs: dict[str, ImageConfig] = {target: inspect(image) for target, image in images.items()}
    with mounted(images["worker"]) as worker_root, mounted(images["api"]) as api_root:
        # The chart's migration Job: the worker image with the argument `migrate`.
        migration = ImageProcess(
            worker_root, configs["worker"], database, tmp_path / "migrate.log", "migrate"
        )
        assert migration.run(timeout=120) == 0, migration.log()

        with ExitStack() as started:
            worker = ImageProcess(
                worker_root, configs["worker"], worker_env, tmp_path / "worker.log"
            )
            started.callback(worker.stop)
            api = ImageProcess(api_root, configs["api"], api_env, tmp_path / "api.log")
            started.callback(api.stop)
            wait_ready(f"http://127.0.0.1:{probe_port}", worker)
            wait_ready(f"http://127.0.0.1:{api_port}", api)
            # Ready means the entrypoint's `python` was the venv's, found on the image's PATH
            # (the local base's own python3 has none of the dependencies); as the image's user.
            assert (worker.uid(), api.uid()) == (APP_UID, APP_UID)
            # SIGTERM, as the kubelet sends it: both shut down cleanly (uvicorn then re-raises
            # the signal, so the API's status is the signal's).
            assert worker.stop() == 0, worker.log()
            assert api.stop() in (0, -signal.SIGTERM), api.log()
            assert "Application shutdown complete" in api.log()

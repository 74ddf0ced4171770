"""The Dockerfile: hadolint-clean, and shaped as the images must be (non-root, exec form)."""

import re
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO_ROOT

DOCKERFILE = REPO_ROOT / "docker" / "Dockerfile"


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    checked = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_both_targets_run_python_as_pid_1_as_a_numeric_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    stages = dict(re.findall(r"^FROM \S+ AS (\w+)\n(.*?)(?=^FROM |\Z)", text, re.M | re.S))
    assert {"build", "runtime", "api", "worker"} <= set(stages)
    assert re.search(r"^USER 10001:10001$", stages["runtime"], re.M)
    assert 'ENTRYPOINT ["python", "-m", "services.api"]' in stages["api"]
    assert 'ENTRYPOINT ["python", "-m", "services.worker"]' in stages["worker"]
    # No compiler or package manager caches in what ships: only the venv is copied over.
    assert "apt-get" not in stages["runtime"] + stages["api"] + stages["worker"]
    assert "COPY --from=build /opt/venv /opt/venv" in stages["runtime"]


def test_the_default_base_is_the_official_python_image_pinned_by_digest() -> None:
    # A tag can be pushed again; a digest cannot. `make images-local` overrides the argument.
    text = DOCKERFILE.read_text()
    pinned = r"^ARG PYTHON_IMAGE=python:3\.\d+\.\d+-slim-\w+@sha256:[0-9a-f]{64}$"
    assert re.search(pinned, text, re.M)
    assert re.findall(r"^FROM (\S+)", text, re.M) == [
        "${PYTHON_IMAGE}",
        "${PYTHON_IMAGE}",
        "runtime",
        "runtime",
    ]


def test_the_build_steps_run_on_any_debian_base_with_python3() -> None:
    # The local base (debootstrap) has python3 but no `python`; only the final stages, with the
    # venv first on PATH, may say python.
    text = DOCKERFILE.read_text()
    steps = re.findall(r"^RUN (.*?)(?<!\\)$", text, re.M | re.S)
    assert steps
    assert not [step for step in steps if re.search(r"(^|[\s;&|])python(\s|$)", step)]

"""External programs some tests drive, from Debian packages that `make tools` installs.

A test declares what it needs with `@pytest.mark.requires_tool("promtool", ...)`; tests/conftest.py
checks the marker before any fixture runs, so a missing tool costs no setup. Where a tool is
missing the test is skipped, except in CI (CI set and non-empty), where it fails: CI must run it.
"""

import os
import shutil
from typing import NoReturn

import pytest

# command -> the Debian package that provides it; tests/tools.sh (make tools) holds the same list.
TOOLS = {
    "chromium": "chromium",
    "debootstrap": "debootstrap",
    "openssl": "openssl",
    "pgrep": "procps",
    "podman": "podman",
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "wrk": "wrk",
}
HINT = "`make tools` (as root, on Debian) installs it"


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def missing(reason: str, hint: str) -> NoReturn:
    """Fail under CI, skip elsewhere: tests must never be skipped silently in CI."""
    if in_ci():
        pytest.fail(f"{reason}; CI must run this test: {hint}", pytrace=False)
    pytest.skip(f"{reason}; {hint}")


def unknown_tools(names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name not in TOOLS]


def why_missing(names: tuple[str, ...]) -> str | None:
    """None when every named tool is on PATH; else what is missing."""
    absent = [name for name in names if shutil.which(name) is None]
    if not absent:
        return None
    packages = sorted({TOOLS.get(name, "?") for name in absent})
    return f"{', '.join(absent)} not installed (Debian package {', '.join(packages)})"


def check_tools(names: tuple[str, ...]) -> None:
    """Skip (or, in CI, fail) unless every named tool is on PATH."""
    if unknown := unknown_tools(names):
        raise pytest.UsageError(f"unknown tools {unknown}; known: {sorted(TOOLS)}")
    if reason := why_missing(names):
        missing(reason, HINT)


def require_tool(name: str) -> str:
    """The tool's path. Tests declare the tool with the requires_tool marker, which checks it
    before setup; this check is for callers without the marker."""
    check_tools((name,))
    path = shutil.which(name)
    assert path is not None
    return path

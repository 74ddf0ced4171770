"""External tools some tests need: skipped where missing, except in CI, which installs them."""

import os
import shutil

import pytest


def require_tool(name: str, provided_by: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (it comes with {provided_by})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; .ci/run must install it")
        pytest.skip(message)
    return path

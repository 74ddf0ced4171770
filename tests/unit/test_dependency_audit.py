"""make audit: vulnerable pins fail the run, unknown versions are named as not audited, and an
unreachable advisory service is said in one line without a hang."""

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support.dependency_audit import judge
from tests.support.processes import REPO_ROOT


def test_a_known_vulnerability_fails_and_unknown_versions_are_not_called_clean() -> None:
    report = {
        "dependencies": [
            {"name": "starlette", "version": "1.10.0", "vulns": []},
            {
                "name": "requests",
                "version": "2.19.0",
                "vulns": [{"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"]}],
            },
            {"name": "internal-lib", "skip_reason": "Dependency not found on PyPI"},
        ]
    }
    verdict = judge(report)
    assert verdict.audited == 2
    assert verdict.vulnerable == ["requests==2.19.0: PYSEC-2018-28 (fixed in: 2.20.0)"]
    assert verdict.unaudited == ["internal-lib"]


def test_an_unreachable_advisory_service_is_said_at_once(tmp_path: Path) -> None:
    (tmp_path / "constraints.txt").write_text("starlette==1.10.0\n")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from tests.support.dependency_audit import audit; "
            f"sys.exit(audit(Path({str(tmp_path / 'constraints.txt')!r}), strict=False))",
        ],
        # A proxy that refuses every connection stands for a machine without the service.
        env={
            **os.environ,
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit: the advisory service could not be reached; nothing was audited" in done.stdout
    assert len(done.stdout.splitlines()) == 1
    assert time.monotonic() - started < 60


def test_pip_audit_failing_for_another_reason_fails_the_audit(tmp_path: Path) -> None:
    from tests.support.dependency_audit import audit

    (tmp_path / "constraints.txt").write_text("starlette==1.10.0\n")
    # A tool that is not there (a broken install) must not read as "nothing to report".
    assert audit(tmp_path / "constraints.txt", strict=False, module="pip_audit_missing") == 1

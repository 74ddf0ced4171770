"""`make audit`: the pinned dependencies (constraints.txt) against PyPI's vulnerability
advisories, through pip-audit.

Fails (exit 1) on any known vulnerability. Offline-tolerant: when the advisory service cannot
be reached it says so in one line and exits 0 within its time limit, never hangs; versions the
service does not know (a private mirror's, say) are counted and named as not audited, never
passed off as clean. AUDIT_STRICT=1 makes both of those fail too.
"""

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.processes import REPO_ROOT

REQUEST_TIMEOUT_SECONDS = 10
OVERALL_TIMEOUT_SECONDS = 300
# What requests says when the advisory service can't be reached (the only failure tolerated).
NETWORK_ERRORS = (
    "ConnectionError",
    "ConnectTimeout",
    "ReadTimeout",
    "ProxyError",
    "SSLError",
    "Max retries exceeded",
    "NameResolutionError",
    "Temporary failure in name resolution",
)


@dataclass
class Verdict:
    vulnerable: list[str] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)
    audited: int = 0


def judge(report: dict[str, Any]) -> Verdict:
    """pip-audit's JSON report: the vulnerable pins (with their advisories and fixes), the
    pins the service could not audit, and how many it did."""
    verdict = Verdict()
    for dependency in report.get("dependencies", []):
        version = dependency.get("version")
        pin = dependency["name"] if version is None else f"{dependency['name']}=={version}"
        if dependency.get("skip_reason"):
            verdict.unaudited.append(pin)
            continue
        verdict.audited += 1
        for vuln in dependency.get("vulns", []):
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
            verdict.vulnerable.append(f"{pin}: {vuln['id']} (fixed in: {fixes})")
    return verdict


def audit(constraints: Path, strict: bool, module: str = "pip_audit") -> int:
    command = [
        sys.executable,
        "-m",
        module,
        "--requirement",
        str(constraints),
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "--timeout",
        str(REQUEST_TIMEOUT_SECONDS),
        "--format",
        "json",
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=OVERALL_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired:
        print(f"audit: no answer from the advisory service in {OVERALL_TIMEOUT_SECONDS} s")
        return 1 if strict else 0
    try:
        report = json.loads(done.stdout)
    except ValueError:
        errors = [line for line in done.stderr.splitlines() if line.strip()]
        reason = errors[-1] if errors else f"pip-audit exited {done.returncode}"
        if not any(sign in done.stderr for sign in NETWORK_ERRORS):
            # Not the network: pip-audit itself failed, and nothing was audited. Say so.
            print(f"audit: pip-audit failed ({reason[:300]})")
            return 1
        print(
            "audit: the advisory service could not be reached; nothing was audited "
            f"({reason[:300]})"
        )
        return 1 if strict else 0
    verdict = judge(report)
    for line in verdict.vulnerable:
        print(f"audit: VULNERABLE {line}")
    print(
        f"audit: {verdict.audited} pinned dependencies audited, "
        f"{len(verdict.vulnerable)} known vulnerabilities, "
        f"{len(verdict.unaudited)} not audited (versions the service does not know)"
    )
    if verdict.unaudited:
        print("audit: not audited: " + ", ".join(verdict.unaudited))
    if verdict.vulnerable:
        return 1
    return 1 if strict and verdict.unaudited else 0


if __name__ == "__main__":
    sys.exit(audit(REPO_ROOT / "constraints.txt", os.environ.get("AUDIT_STRICT") == "1"))

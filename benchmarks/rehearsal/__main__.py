"""`python -m benchmarks.rehearsal SCENARIO`: rehearse the chart's autoscaling on this machine.

Renders the chart (with --set overrides), starts PostgreSQL's database, the API, Prometheus and
the worker pods, and drives the autoscaler through the scenario at real timings, or faster with
--time-scale (every window, period, delay and step duration divided by it). Writes
benchmarks/results/rehearsal-<scenario>[-keda].json and .png and prints the figures.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from benchmarks.rehearsal import config as chart_config
from benchmarks.rehearsal import report
from benchmarks.rehearsal.scenarios import (
    DEFAULT_STEP_SECONDS,
    DEFAULT_STEPS,
    DEFAULT_WORKFLOWS,
    SCENARIOS,
    Workload,
    targets,
)
from benchmarks.rehearsal.stage import Stage
from tests.support.databases import migrate, postgres_server
from tests.support.tools import HINT, why_missing

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Scheduling and image pull of a new pod, at real timings.
DEFAULT_START_DELAY_SECONDS = 10.0


def _set(values: dict[str, Any], assignment: str) -> None:
    """helm's --set a.b.c=value, with the value read as YAML (numbers, booleans)."""
    path, separator, raw = assignment.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"--set needs key=value, got {assignment!r}")
    *parents, leaf = path.split(".")
    node = values
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = yaml.safe_load(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.rehearsal", description=__doc__)
    parser.add_argument("scenario", choices=[*sorted(SCENARIOS), "all"])
    parser.add_argument("--mode", choices=["hpa", "keda"], default="hpa")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--workflows", type=int, default=DEFAULT_WORKFLOWS)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS)
    parser.add_argument("--start-delay", type=float, default=DEFAULT_START_DELAY_SECONDS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if absent := why_missing(("prometheus",)):
        print(f"rehearsal: {absent}; {HINT}", file=sys.stderr)
        return 2
    values: dict[str, Any] = {}
    for assignment in args.set:
        _set(values, assignment)
    runs: list[tuple[str, chart_config.Mode]] = [(args.scenario, args.mode)]
    if args.scenario == "all":
        runs = [(name, "hpa") for name in ALL] + [("burst", "keda")]
    results = []
    for scenario, mode in runs:
        figures = _rehearse(args, scenario, mode, values)
        if figures is None:
            return 2
        results.append(figures)
    if len(results) > 1:
        summary = report.write_summary(args.out, results)
        print(f"rehearsal: wrote {summary}")
    return 0


# What `all` runs, in this order (and then the burst in KEDA mode).
ALL = ("burst", "lull", "ramp", "outage", "node-loss")


def _rehearse(
    args: argparse.Namespace, scenario: str, mode: chart_config.Mode, values: dict[str, Any]
) -> dict[str, Any] | None:
    scale = args.time_scale
    config = chart_config.load(mode, values).scaled(scale)
    work = Workload(args.workflows, args.steps, args.step_seconds / scale)
    start_delay = args.start_delay / scale
    name = f"rehearsal-{scenario}" + ("-keda" if mode == "keda" else "")
    with postgres_server() as server, tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
        if server is None:
            print("rehearsal: no PostgreSQL server found or startable", file=sys.stderr)
            return None
        url = server.create_database()
        migrate(url)
        stage = Stage(config, url, Path(tmp), start_delay)
        try:
            stage.open()
            figures = SCENARIOS[scenario](stage, work, start_delay)
        finally:
            stage.close()
    settings = {
        "mode": mode,
        "time_scale": scale,
        "workload": {
            "workflows": work.workflows,
            "steps": work.num_steps,
            "step_seconds": work.step_seconds,
        },
        "start_delay_seconds": start_delay,
        "values": values,
        "autoscaler": {
            "min": config.min_replicas,
            "max": config.autoscaler.max_replicas,
            "target": config.autoscaler.target_average_value,
            "sync_period_seconds": config.autoscaler.sync_period_seconds,
        },
        "worker_concurrency": config.worker_concurrency,
    }
    figures = {"scenario": name.removeprefix("rehearsal-"), **figures}
    figures["targets"] = targets(figures["scenario"], figures)
    json_path, png_path = report.write(args.out, name, figures, settings, stage.timeline)
    print(json.dumps(figures, indent=2))
    for target, met in figures["targets"].items():
        print(f"rehearsal: {name}: {'met' if met else 'MISSED'}: {target}")
    print(f"rehearsal: wrote {json_path} and {png_path}")
    return figures


if __name__ == "__main__":
    sys.exit(main())

"""`python -m benchmarks`: the project beside its references, in one run, on this machine.

Enqueue over HTTP (against the seed-shaped server and the in-process ceiling), execution
(against a bare DBOS worker: throughput, transactions per workflow, several workers, idle cost,
enqueue-to-start latency) and reads under write load (analyzed and never-analyzed tables).
Writes benchmarks/results/benchmarks.json, benchmarks.md and one PNG per family, and prints
where. PostgreSQL: TEST_DATABASE_URL, else 127.0.0.1:5432.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import enqueue, execution, reads
from benchmarks.bench_report import headline, write_markdown, write_plots
from benchmarks.measure import databases

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = {"enqueue", "execution", "reads"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--reps", type=int, default=3, help="repetitions per configuration")
    parser.add_argument("--seconds", type=int, default=8, help="length of one HTTP load run")
    parser.add_argument("--quick", action="store_true", help="a smaller grid, for a smoke run")
    parser.add_argument(
        "--only", default="enqueue,execution,reads", help="families to run, comma-separated"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other families' figures from the results already in --out",
    )
    args = parser.parse_args(argv)
    families = {name.strip() for name in args.only.split(",") if name.strip()}
    if unknown := families - FAMILIES:
        parser.error(f"unknown --only {sorted(unknown)}: choose from {sorted(FAMILIES)}")
    raw: dict[str, Any] = {}
    started = time.monotonic()
    with databases() as dbs:
        if "execution" in families:
            print("execution: the project's worker and a bare DBOS worker", flush=True)
            raw["execution"] = execution.run(dbs, args.reps, args.quick)
        if "enqueue" in families:
            print("enqueue: HTTP with wrk, and in process", flush=True)
            raw["enqueue"] = enqueue.run(dbs, args.reps, args.seconds, args.quick)
        if "reads" in families:
            print("reads: first page and uncached /metrics under write load", flush=True)
            raw["reads"] = reads.run(dbs, seconds=6 if args.quick else 16)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "reps": args.reps,
        "duration_seconds": round(time.monotonic() - started),
        # When each family's figures were taken (several runs when merged).
        "runs": {family: stamp for family in raw},
    }
    if "execution" in raw:
        summary["execution"] = execution.summarize(raw["execution"])
    if "enqueue" in raw:
        summary["enqueue"] = enqueue.summarize(raw["enqueue"])
    if "reads" in raw:
        summary["reads"] = raw["reads"]
    previous_path = args.out / "benchmarks.json"
    if args.merge and previous_path.exists():
        previous = json.loads(previous_path.read_text())
        for family in sorted(FAMILIES - set(raw)):
            if family in previous:
                summary[family] = previous[family]
                raw[family] = previous["raw"][family]
                summary["runs"][family] = previous.get("runs", {}).get(family, previous["date"])
    summary.update(headline(summary))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps({**summary, "raw": raw}, indent=1) + "\n")
    markdown = write_markdown(summary, args.out / "benchmarks.md")
    plots = write_plots(summary, args.out)
    print(markdown)
    print(f"wrote {args.out / 'benchmarks.json'}, {args.out / 'benchmarks.md'}")
    for plot in plots:
        print(f"wrote {plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

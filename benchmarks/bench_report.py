"""The side-by-side benchmarks' report: headline figures, a Markdown page, one plot per family."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

# The configuration the headline figures are taken at: the busiest one of the grid.
HEADLINE_CONCURRENCY, HEADLINE_POLLING = 50, 0.1


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """The per-run figures the results JSON carries at its top level."""
    out: dict[str, Any] = {}
    if "enqueue" in summary:
        rows = {
            (r["server"], r["processes"], r["connections"]): r for r in summary["enqueue"]["rows"]
        }
        out["enqueue_rps"] = rows[("ours", 1, 16)]["rps"]
        out["enqueue_reference_rps"] = rows[("seed", 1, 16)]["rps"]
        out["enqueue_ceiling_rps"] = summary["enqueue"]["ceiling_rps"]
        batches = summary["enqueue"].get("batch_rows", [])
        if batches:
            out["batch_enqueue_wf_per_s"] = max(r["wf_per_s"] for r in batches)
            out["batch_enqueue_reference_wf_per_s"] = summary["enqueue"]["batch_reference_wf_per_s"]
    if "execution" in summary:
        execution = summary["execution"]
        top = next(
            r
            for r in execution["throughput"]
            if (r["concurrency"], r["polling_seconds"]) == (HEADLINE_CONCURRENCY, HEADLINE_POLLING)
        )
        out["worker_wf_per_s"] = top["ours"]["wf_per_s"]
        out["worker_reference_wf_per_s"] = top["bare DBOS"]["wf_per_s"]
        out["tx_per_workflow"] = top["ours"]["tx_per_wf"]
        out["tx_per_workflow_reference"] = top["bare DBOS"]["tx_per_wf"]
        out["idle_tx_per_s"] = execution["idle"]["ours"]["tx_per_s"]
        out["idle_tx_per_s_reference"] = execution["idle"]["bare DBOS"]["tx_per_s"]
    return out


def targets(summary: dict[str, Any]) -> list[tuple[str, bool]]:
    """The issue's targets, each with whether this run met it."""
    out: list[tuple[str, bool]] = []
    if "enqueue_rps" in summary:
        rows = {
            (r["server"], r["processes"], r["connections"]): r for r in summary["enqueue"]["rows"]
        }
        ratio = summary["enqueue_rps"] / summary["enqueue_reference_rps"]
        out.append(
            (
                f"HTTP enqueue, one process, {ratio:.2f}x the seed-shaped server (>= 1.2x)",
                ratio >= 1.2,
            )
        )
        share = summary["enqueue_rps"] / summary["enqueue_ceiling_rps"]
        out.append(
            (f"HTTP enqueue at {share:.0%} of the in-process ceiling (toward 70 %)", share >= 0.7)
        )
        if ("ours", 1, 64) in rows:
            r16, r64 = rows[("ours", 1, 16)]["rps"], rows[("ours", 1, 64)]["rps"]
            out.append(
                (
                    f"throughput at 64 connections {r64:.0f}/s vs 16: {r16:.0f}/s (must not fall)",
                    r64 >= 0.95 * r16,
                )
            )
        if ("ours", 2, 16) in rows:
            two = rows[("ours", 2, 16)]["rps"]
            out.append(
                (
                    f"two API processes {two:.0f}/s vs one {summary['enqueue_rps']:.0f}/s (faster)",
                    two > summary["enqueue_rps"],
                )
            )
    if "batch_enqueue_wf_per_s" in summary:
        rate = summary["batch_enqueue_wf_per_s"]
        out.append((f"batch enqueue {rate:,.0f} workflows/s (>= 10,000)", rate >= 10_000))
    if "worker_wf_per_s" in summary:
        ratio = summary["worker_wf_per_s"] / summary["worker_reference_wf_per_s"]
        out.append((f"worker at {ratio:.0%} of the bare DBOS worker (>= 95 %)", ratio >= 0.95))
        extra = summary["tx_per_workflow"] - summary["tx_per_workflow_reference"]
        out.append(
            (f"transactions per workflow {extra:+.2f} vs bare DBOS (within +0.5)", extra <= 0.5)
        )
        idle = summary["idle_tx_per_s"] - summary["idle_tx_per_s_reference"]
        out.append((f"idle worker {idle:+.2f} tx/s vs bare DBOS (within +1)", idle <= 1.0))
        for row in summary["execution"]["latency"]:
            p99, limit = row["ours"]["p99_ms"], row["polling_seconds"] * 1000 + 50
            out.append(
                (
                    f"enqueue-to-start p99 {p99:.0f} ms at polling {row['polling_seconds']} s "
                    f"(<= {limit:.0f} ms)",
                    p99 <= limit,
                )
            )
    if "reads" in summary:
        floor = {
            (r["tables"], r["load"]): r["p99_ms"]
            for r in summary["reads"]
            if r["request"] == "/healthz"
        }
        busy = [r for r in summary["reads"] if r["request"] == "first page" and r["load"] != "idle"]
        for row in busy:
            healthz = floor.get((row["tables"], row["load"]))
            beside = "" if healthz is None else f"; /healthz p99 {healthz:.1f} ms"
            out.append(
                (
                    f"first page p99 {row['p99_ms']:.1f} ms, {row['load']}, "
                    f"{row['tables']} tables (< 20 ms{beside})",
                    row["p99_ms"] < 20,
                )
            )
    return out


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    """A Markdown table: header, separator, one line per row."""
    return [
        "| " + " | ".join(headers) + " |",
        "|" + "---|" * len(headers),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def write_markdown(summary: dict[str, Any], path: Path) -> str:
    lines = [
        f"# Benchmarks, {summary['date']}",
        "",
        "`make bench` (`python -m benchmarks`). Same machine, same run; each figure is the "
        "median of "
        f"{summary['reps']} interleaved repetitions (the project and its reference alternate). "
        f"The run took {summary['duration_seconds']} s.",
        "",
    ]
    runs = summary.get("runs", {})
    if len(set(runs.values())) > 1:
        lines += [
            "Figures from more than one run (`--merge`): "
            + ", ".join(f"{family} {when}" for family, when in sorted(runs.items()))
            + ". Compare within a table, not across them.",
            "",
        ]
    if "execution" in summary:
        execution = summary["execution"]
        lines += [
            "## Execution: one worker against a bare DBOS worker",
            "",
            "Workflows of 2 steps of 0 s, all enqueued before the worker starts. Throughput from "
            "DBOS's timestamps (first start to last finish); transactions (commits + rollbacks) "
            "per workflow from pg_stat_database over the worker's whole life.",
            "",
        ]
        lines += _table(
            [
                "concurrency",
                "polling s",
                "ours wf/s",
                "bare wf/s",
                "ratio",
                "ours tx/wf",
                "bare tx/wf",
                "difference",
            ],
            [
                [
                    r["concurrency"],
                    r["polling_seconds"],
                    f"{o['wf_per_s']:.1f}",
                    f"{b['wf_per_s']:.1f}",
                    f"{o['wf_per_s'] / b['wf_per_s']:.2f}",
                    f"{o['tx_per_wf']:.2f}",
                    f"{b['tx_per_wf']:.2f}",
                    f"{o['tx_per_wf'] - b['tx_per_wf']:+.2f}",
                ]
                for r in execution["throughput"]
                for o, b in [(r["ours"], r["bare DBOS"])]
            ],
        )
        lines += ["", "### Several workers (concurrency 50, polling 0.1 s, 600 workflows)", ""]
        lines += _table(
            ["workers", "wf/s", "tx/wf", "rollbacks/wf", "workflows per worker (min-max)"],
            [
                [
                    r["workers"],
                    f"{r['wf_per_s']:.1f}",
                    f"{r['tx_per_wf']:.2f}",
                    f"{r['rollbacks_per_wf']:.2f}",
                    f"{r['share_min']}-{r['share_max']}",
                ]
                for r in execution["workers"]
            ],
        )
        idle = execution["idle"]
        lines += ["", "### Idle worker (polling 1 s)", ""]
        lines += _table(
            ["worker", "transactions/s", "connections"],
            [
                [name, f"{idle[name]['tx_per_s']:.1f}", f"{idle[name]['connections']:.0f}"]
                for name in ("ours", "bare DBOS")
            ],
        )
        lines += ["", "### Enqueue-to-start at light load (DBOS's `started_at - created_at`)", ""]
        lines += _table(
            ["polling s", "ours p50 ms", "ours p99 ms", "bare p50 ms", "bare p99 ms"],
            [
                [
                    r["polling_seconds"],
                    f"{r['ours']['p50_ms']:.0f}",
                    f"{r['ours']['p99_ms']:.0f}",
                    f"{r['bare DBOS']['p50_ms']:.0f}",
                    f"{r['bare DBOS']['p99_ms']:.0f}",
                ]
                for r in execution["latency"]
            ],
        )
        lines.append("")
    if "enqueue" in summary:
        enqueue = summary["enqueue"]
        seed = {
            (r["processes"], r["connections"]): r["rps"]
            for r in enqueue["rows"]
            if r["server"] == "seed"
        }
        lines += [
            "## HTTP enqueue against the seed-shaped server",
            "",
            "wrk, `POST /workflows` with a JSON body over keep-alive connections. The ceiling: "
            f"`DBOSClient.enqueue` in process from 8 threads, {enqueue['ceiling_rps']:.0f} "
            "workflows/s. The API passes it: the workflows of requests that arrive together "
            "are written in one transaction (services/api/enqueue_groups.py).",
            "",
            "| server | processes | connections | req/s | vs seed | p50 ms | p90 ms | p99 ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in enqueue["rows"]:
            ratio = r["rps"] / seed[(r["processes"], r["connections"])]
            lines.append(
                f"| {r['server']} | {r['processes']} | {r['connections']} | {r['rps']:.0f} | "
                f"{ratio:.2f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} |"
            )
        lines.append("")
        if enqueue.get("batch_rows"):
            lines += [
                "## Batch enqueue",
                "",
                "wrk, `POST /workflows:batch` of 1,000 workflows per request. The reference: "
                "DBOS's own way to enqueue many at once, `enqueue_in_transaction` 1,000 times "
                f"per transaction in process, {enqueue['batch_reference_wf_per_s']:,.0f} "
                "workflows/s.",
                "",
                *_table(
                    [
                        "processes",
                        "connections",
                        "workflows/s",
                        "vs DBOS in process",
                        "p50 ms",
                        "p99 ms",
                    ],
                    [
                        [
                            r["processes"],
                            r["connections"],
                            f"{r['wf_per_s']:,.0f}",
                            f"{r['wf_per_s'] / enqueue['batch_reference_wf_per_s']:.1f}x",
                            f"{r['p50_ms']:.0f}",
                            f"{r['p99_ms']:.0f}",
                        ]
                        for r in enqueue["batch_rows"]
                    ],
                ),
                "",
            ]
    if "reads" in summary:
        lines += [
            "## Reads under write load (50,000 finished + 50,000 queued)",
            "",
            "wrk, one connection, requests back to back. Two workers of concurrency 50 drain the "
            "queue with steps of 0 s: with PostgreSQL they take every cycle of this machine's two "
            "cores the API does not. Niced, they run below the API's CPU priority (their "
            "PostgreSQL backends do not). `/healthz` reads nothing: its latency under the same "
            "load is the floor any request of this process waits for a core.",
            "",
            "| tables | load | request | requests | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|",
            *(
                f"| {r['tables']} | {r['load']} | {r['request']} | {r['requests']} | "
                f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |"
                for r in summary["reads"]
            ),
            "",
        ]
    lines += ["## Targets", ""]
    lines += [f"- {'met' if met else 'MISSED'}: {text}" for text, met in targets(summary)]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_plots(summary: dict[str, Any], out: Path) -> list[Path]:
    written = []
    if "execution" in summary:
        written += [
            _plot_execution(summary["execution"], out),
            _plot_workers(summary["execution"], out),
        ]
    if "enqueue" in summary or "execution" in summary:
        written.append(_plot_latency(summary, out))
    if "reads" in summary:
        written.append(_plot_reads(summary["reads"], out))
    return written


def _bars(axis: Any, labels: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        axis.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    axis.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels)
    axis.set_ylabel(ylabel)
    axis.legend()


def _plot_execution(execution: dict[str, Any], out: Path) -> Path:
    rows = execution["throughput"]
    labels = [f"c{r['concurrency']}, poll {r['polling_seconds']} s" for r in rows]
    figure, (rate, tx) = plt.subplots(1, 2, figsize=(12, 4.5))
    figure.suptitle("Throughput and transactions per workflow: ours vs a bare DBOS worker")
    names = ("ours", "bare DBOS")
    _bars(rate, labels, {n: [r[n]["wf_per_s"] for r in rows] for n in names}, "workflows/s")
    _bars(
        tx,
        labels,
        {n: [r[n]["tx_per_wf"] for r in rows] for n in names},
        "commits + rollbacks per workflow",
    )
    return _save(figure, out / "bench-execution.png")


def _plot_workers(execution: dict[str, Any], out: Path) -> Path:
    rows = execution["workers"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot([r["workers"] for r in rows], [r["wf_per_s"] for r in rows], marker="o")
    axis.set_xlabel("workers (concurrency 50, polling 0.1 s)")
    axis.set_ylabel("workflows/s")
    axis.set_xticks([r["workers"] for r in rows])
    axis.set_title("Scaling with workers on one 2-core machine")
    return _save(figure, out / "bench-workers.png")


def _plot_latency(summary: dict[str, Any], out: Path) -> Path:
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    figure.suptitle("Latency percentiles")
    if "enqueue" in summary:
        rows = summary["enqueue"]["rows"]
        labels = [f"{r['server']} x{r['processes']}, c{r['connections']}" for r in rows]
        _bars(
            axes[0],
            labels,
            {p: [r[f"{p}_ms"] for r in rows] for p in ("p50", "p90", "p99")},
            "HTTP enqueue latency, ms",
        )
        axes[0].tick_params(axis="x", labelrotation=30)
    if "execution" in summary:
        rows = summary["execution"]["latency"]
        labels = [
            f"{n}, poll {r['polling_seconds']} s" for r in rows for n in ("ours", "bare DBOS")
        ]
        values = {
            p: [r[n][f"{p}_ms"] for r in rows for n in ("ours", "bare DBOS")]
            for p in ("p50", "p99")
        }
        _bars(axes[1], labels, values, "enqueue-to-start, ms")
        axes[1].tick_params(axis="x", labelrotation=30)
    return _save(figure, out / "bench-latency.png")


def _plot_reads(rows: list[dict[str, Any]], out: Path) -> Path:
    labels = [f"{r['request']}\n{r['tables']}, {r['load']}" for r in rows]
    figure, axis = plt.subplots(figsize=(12, 4.5))
    _bars(axis, labels, {p: [r[f"{p}_ms"] for r in rows] for p in ("p50", "p99")}, "ms")
    axis.set_yscale("log")
    axis.set_title("Reads under write load: analyzed and never-analyzed tables")
    axis.tick_params(axis="x", labelsize=7)
    return _save(figure, out / "bench-reads.png")


def _save(figure: Any, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path

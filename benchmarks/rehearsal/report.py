"""A rehearsal's results: a JSON file of figures and timeline, and a PNG plot over time."""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt

from benchmarks.rehearsal.stage import Timeline


def write(
    out_dir: Path, name: str, figures: dict[str, Any], settings: dict[str, Any], timeline: Timeline
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out_dir / f"{name}.json", out_dir / f"{name}.png"
    document = {
        **figures,
        "settings": settings,
        "timeline": {
            "samples": [asdict(sample) for sample in timeline.samples],
            "changes": timeline.changes,
            "outages": timeline.outages,
            "scale_ins": timeline.scale_ins,
        },
    }
    json_path.write_text(json.dumps(document, indent=2) + "\n")
    _plot(png_path, name, figures, timeline)
    return json_path, png_path


def _plot(path: Path, name: str, figures: dict[str, Any], timeline: Timeline) -> None:
    samples = timeline.samples
    t = [s.t for s in samples]
    figure, (backlog, replicas, rate) = plt.subplots(3, 1, sharex=True, figsize=(10, 8))
    figure.suptitle(
        f"{name}: {figures['workflows_succeeded']}/{figures['workflows_enqueued']} succeeded, "
        f"drained in {figures['drain_seconds']} s (ideal {figures['ideal_drain_seconds']} s)"
    )
    backlog.plot(t, [s.enqueued for s in samples], label="enqueued")
    backlog.plot(t, [s.pending for s in samples], label="pending (running)")
    backlog.set_ylabel("workflows")
    load_axis = backlog.twinx()
    load_axis.plot(t, [s.load for s in samples], color="tab:red", linestyle=":", label="load")
    load_axis.set_ylabel("queue load (metric)")
    backlog.legend(loc="upper left")
    load_axis.legend(loc="upper right")
    replicas.step(t, [s.desired for s in samples], where="post", label="desired")
    replicas.step(t, [s.ready for s in samples], where="post", label="ready")
    replicas.set_ylabel("workers")
    replicas.legend(loc="upper left")
    done = [s.succeeded for s in samples]
    throughput = [
        (b - a) / (t1 - t0) if t1 > t0 else 0.0
        for a, b, t0, t1 in zip(done, done[1:], t, t[1:], strict=False)
    ]
    rate.plot(t[1:], throughput, label="succeeded per second")
    rate.set_ylabel("workflows/s")
    rate.set_xlabel("seconds (rehearsal clock)")
    for axis in (backlog, replicas, rate):
        for start, end in timeline.outages:
            axis.axvspan(start, end if end != float("inf") else t[-1], color="grey", alpha=0.2)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# The targets the rehearsal is judged by (see the issue that asked for it, and the page).
COLUMNS = (
    "scenario",
    "workflows_enqueued",
    "workflows_lost",
    "steps_reexecuted",
    "drain_seconds",
    "ideal_drain_seconds",
    "drain_vs_ideal",
    "max_ready_replicas",
    "replica_changes",
    "direction_reversals",
    "outage_replica_changes",
    "busy_pods_scaled_in",
)


def write_summary(out_dir: Path, results: list[dict[str, Any]]) -> Path:
    """One Markdown table of every scenario's figures, with its plot."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
        *("| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in results),
        "",
        *(f"![{r['scenario']}](rehearsal-{r['scenario']}.png)" for r in results),
        "",
    ]
    path = out_dir / "rehearsal.md"
    path.write_text("\n".join(lines))
    return path

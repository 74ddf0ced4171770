"""Two worker pools on one database, each with the autoscaler the chart gives it: load on one
pool's queue must scale that pool alone. Each pool plays on a stage of its own (its API, its
Prometheus, its Deployment stand-in and HPA), all ticking together."""

import time
from typing import Any

import sqlalchemy as sa

from benchmarks.rehearsal.scenarios import Workload
from benchmarks.rehearsal.stage import Stage


def run_together(stages: list[Stage], done: Any, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rehearsal: timed out after {timeout:g}s waiting for {what}")
        for stage in stages:
            stage.tick()


def succeeded(stage: Stage, engine: sa.Engine) -> int:
    """Workflows of the stage's type that succeeded."""
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                f"SELECT count(*) FROM {schema}workflow_status "
                "WHERE name = :name AND status = 'SUCCESS'"
            ),
            {"name": stage.config.workflow},
        ).scalar_one()
    return int(count)


def busy_pool(busy: Stage, idle: Stage, work: Workload, engine: sa.Engine) -> dict[str, Any]:
    """A burst on `busy`'s queue alone, run until it is all done: what each pool did meanwhile
    (the most workers each asked for, and the changes the idle one's autoscaler made)."""
    started_busy, started_idle = busy.now(), idle.now()
    before = succeeded(busy, engine)
    busy.enqueue(work.workflows, work.num_steps, work.step_seconds)
    timeout = work.workflows * work.workflow_seconds + 120
    run_together(
        [busy, idle],
        lambda: succeeded(busy, engine) >= before + work.workflows,
        timeout=timeout,
        what=f"{work.workflows} workflows of {busy.config.workflow} to succeed",
    )
    return {
        "busy_max_desired": max(s.desired for s in busy.timeline.samples if s.t >= started_busy),
        "idle_max_desired": max(s.desired for s in idle.timeline.samples if s.t >= started_idle),
        "idle_scale_outs": [
            change
            for change in idle.timeline.changes
            if change[0] >= started_idle and change[2] > change[1]
        ],
    }

"""A rollout from one application version to the next, on one database: each version's fleet
with the autoscaler the chart gives it (the pool's own Deployment at applicationVersion, and
<pool>-v<old> from previousVersions), each on a stage of its own, ticking together.

The old version's backlog must scale the old fleet alone and run only on its workers, while the
new version's work runs on the new fleet; once the old version has no work left, its fleet can
go with nothing of its work left behind."""

from typing import Any

import sqlalchemy as sa

from benchmarks.rehearsal.pools import run_together
from benchmarks.rehearsal.scenarios import Workload
from benchmarks.rehearsal.stage import Stage


def version_of(stage: Stage) -> str:
    return stage.config.worker_env["DBOS__APPVERSION"]


def statuses(engine: sa.Engine) -> dict[tuple[str, str], int]:
    """(application_version, status) -> workflows."""
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT application_version, status, count(*) FROM {schema}workflow_status "
                "GROUP BY application_version, status"
            )
        ).all()
    return {(str(version), str(status)): int(n) for version, status, n in rows}


def executors(engine: sa.Engine, version: str) -> set[str]:
    """The executors that ran (or run) workflows of `version`."""
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                f"SELECT DISTINCT executor_id FROM {schema}workflow_status "
                "WHERE application_version = :version AND executor_id IS NOT NULL"
            ),
            {"version": version},
        ).scalars()
        return {str(executor) for executor in rows}


def rollout(
    old: Stage, new: Stage, old_work: Workload, new_work: Workload, engine: sa.Engine
) -> dict[str, Any]:
    """The old version's burst first, alone until its fleet has scaled out, then the new
    version's work beside it; both run until done. What each fleet did meanwhile."""
    old_version, new_version = version_of(old), version_of(new)

    def succeeded(version: str) -> int:
        return statuses(engine).get((version, "SUCCESS"), 0)

    before = {v: succeeded(v) for v in (old_version, new_version)}
    started_new = new.now()
    old.enqueue(old_work.workflows, old_work.num_steps, old_work.step_seconds)
    most = old.config.autoscaler.max_replicas
    timeout = old_work.workflows * old_work.workflow_seconds + 120
    run_together(
        [old, new],
        lambda: (
            old.deployment.ready_replicas() >= most
            or succeeded(old_version) >= before[old_version] + old_work.workflows
        ),
        timeout=timeout,
        what=f"version {old_version}'s fleet to scale out for its backlog",
    )
    new_desired_alone = max(s.desired for s in new.timeline.samples if s.t >= started_new)
    new.enqueue(new_work.workflows, new_work.num_steps, new_work.step_seconds)
    run_together(
        [old, new],
        lambda: (
            succeeded(old_version) >= before[old_version] + old_work.workflows
            and succeeded(new_version) >= before[new_version] + new_work.workflows
        ),
        timeout=timeout + new_work.workflows * new_work.workflow_seconds,
        what="both versions' work to succeed",
    )
    return {
        "old_max_ready": max(s.ready for s in old.timeline.samples),
        "new_max_desired_while_only_old_work": new_desired_alone,
        "old_executors": executors(engine, old_version),
        "new_executors": executors(engine, new_version),
        "old_pods": {pod.name for pod in old.deployment.history()},
        "new_pods": {pod.name for pod in new.deployment.history()},
    }

"""A rollout from one application version to the next, on one database: each version's fleet
with the autoscaler the chart gives it (the pool's own Deployment at applicationVersion, and
<pool>-v<old> from previousVersions), each on a stage of its own, ticking together.

The old version's backlog must scale the old fleet alone and run only on its workers, while the
new version's work runs on the new fleet; once the old version has no work left, its fleet can
go with nothing of its work left behind."""

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

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


def upgrade(
    before: Stage, old: Stage, new: Stage, old_work: Workload, new_work: Workload, engine: sa.Engine
) -> dict[str, Any]:
    """Version `old`'s burst is queued and running on `before`, the pool's Deployment at the old
    version. Then the upgrade: `before` rolls away (every pod stopped at once, the hardest case
    of a rolling update: each drains, what it leaves is recovered), while `old` (<pool>-v<old>,
    from previousVersions) and `new` (the pool's Deployment at the new version) open. The old
    backlog must scale the old fleet alone and run only on old-version workers; the new work,
    enqueued once the old fleet has scaled out, runs on the new fleet. Both run until done, then
    until the drained old fleet is back at its least. What each fleet did meanwhile."""
    old_version, new_version = version_of(old), version_of(new)

    def succeeded(version: str) -> int:
        return statuses(engine).get((version, "SUCCESS"), 0)

    def running(version: str) -> int:
        return statuses(engine).get((version, "PENDING"), 0)

    done_before = {v: succeeded(v) for v in (old_version, new_version)}
    before.enqueue(old_work.workflows, old_work.num_steps, old_work.step_seconds)
    before.run_until(
        lambda: running(old_version) > 0,
        timeout=60,
        what=f"version {old_version}'s work running before the upgrade",
    )
    for stage in (old, new):
        stage.open()
    before.deployment.scale(0)

    def tick() -> None:
        before.deployment.reconcile()
        old.tick()
        new.tick()

    def ticking(done: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"rehearsal: timed out after {timeout:g}s waiting for {what}")
            tick()

    most = old.config.autoscaler.max_replicas

    def old_done() -> bool:
        return succeeded(old_version) >= done_before[old_version] + old_work.workflows

    timeout = old_work.workflows * old_work.workflow_seconds + 120
    ticking(
        lambda: old.deployment.ready_replicas() >= most or old_done(),
        timeout,
        f"version {old_version}'s fleet to scale out for its backlog",
    )
    # Every sync of the new fleet's autoscaler since it opened, and its replicas now.
    new_desired_alone = max([new.deployment.replicas, *(s.desired for s in new.timeline.samples)])
    new.enqueue(new_work.workflows, new_work.num_steps, new_work.step_seconds)
    ticking(
        lambda: (
            old_done()
            and succeeded(new_version) >= done_before[new_version] + new_work.workflows
            and not before.deployment.pods()
        ),
        timeout + new_work.workflows * new_work.workflow_seconds,
        "both versions' work to succeed",
    )
    least = old.config.autoscaler.min_replicas
    ticking(
        lambda: old.deployment.replicas == least,
        120,
        f"version {old_version}'s drained fleet back at {least}",
    )
    return {
        "old_max_ready": max(s.ready for s in old.timeline.samples),
        "old_replicas_once_drained": old.deployment.replicas,
        "new_max_desired_while_only_old_work": new_desired_alone,
        "old_executors": executors(engine, old_version),
        "new_executors": executors(engine, new_version),
        "before_pods": {pod.name for pod in before.deployment.history()},
        "old_pods": {pod.name for pod in old.deployment.history()},
        "new_pods": {pod.name for pod in new.deployment.history()},
        "old_recovered": recovered(engine, old_version),
    }


def recovered(engine: sa.Engine, version: str) -> int:
    """Workflows of `version` that were started more than once (recovered after a stop)."""
    schema = "dbos." if engine.dialect.name == "postgresql" else ""
    with engine.connect() as conn:
        count = conn.execute(
            sa.text(
                f"SELECT count(*) FROM {schema}workflow_status "
                "WHERE application_version = :version AND recovery_attempts > 1"
            ),
            {"version": version},
        ).scalar_one()
    return int(count)

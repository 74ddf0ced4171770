"""The rehearsal's scenarios: each drives the stage through one shape of load and returns what
happened, in the figures the report prints and the targets are judged by."""

import dataclasses
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.rehearsal.stage import Stage

# Real timings: a burst of thousands of the demo workflow (ten one-second steps).
DEFAULT_WORKFLOWS = 2000
DEFAULT_STEPS = 10
DEFAULT_STEP_SECONDS = 1.0
# The ramp ends in a trickle that keeps this many workers busy while the fleet scales in.
TRICKLE_WORKERS = 2


@dataclass(frozen=True)
class Workload:
    workflows: int
    num_steps: int
    step_seconds: float  # already divided by the time scale

    @property
    def workflow_seconds(self) -> float:
        return self.num_steps * self.step_seconds


Scenario = Callable[[Stage, Workload, float], dict[str, Any]]


def burst(stage: Stage, work: Workload, start_delay: float) -> dict[str, Any]:
    """Everything at once; done when every workflow succeeded."""
    started = stage.now()
    stage.enqueue(work.workflows, work.num_steps, work.step_seconds)
    _drain(stage, work, started)
    return _figures(stage, work, start_delay, started, drained_at=stage.now())


def lull(stage: Stage, work: Workload, start_delay: float) -> dict[str, Any]:
    """A burst, then nothing: done when the workers are back to the minimum."""
    started = stage.now()
    stage.enqueue(work.workflows, work.num_steps, work.step_seconds)
    _drain(stage, work, started)
    drained_at = stage.now()
    _back_to_min(stage)
    figures = _figures(stage, work, start_delay, started, drained_at)
    figures["scale_in_seconds"] = round(stage.now() - drained_at, 2)
    return figures


def outage(stage: Stage, work: Workload, start_delay: float) -> dict[str, Any]:
    """Load, then the load metric goes away for a while (replicas must hold), then back."""
    started = stage.now()
    stage.enqueue(work.workflows, work.num_steps, work.step_seconds)
    minimum = stage.config.min_replicas
    settle = 2 * stage.config.autoscaler.sync_period_seconds

    def scaled_out_and_settled() -> bool:
        changes = stage.timeline.changes
        return (
            stage.deployment.replicas > minimum
            and bool(changes)
            and stage.now() - changes[-1][0] > settle
        )

    # Out of the minimum and no change for two syncs: what the outage interrupts is a steady
    # state, not a scale-out in flight (whose next step a last sample may still drive).
    stage.run_until(
        scaled_out_and_settled,
        timeout=_drain_timeout(stage, work),
        what="the workers to scale out and settle before the outage",
    )
    stage.hide_metrics()
    # A few minutes, on the rehearsal's clock: longer than the scale-down window.
    stage.run_for(1.2 * stage.config.autoscaler.scale_down.stabilization_window_seconds + 1)
    stage.show_metrics()
    _drain(stage, work, started)
    drained_at = stage.now()
    _back_to_min(stage)
    return _figures(stage, work, start_delay, started, drained_at)


def node_loss(stage: Stage, work: Workload, start_delay: float) -> dict[str, Any]:
    """A burst, and several busy pods killed (kill -9) halfway through."""
    started = stage.now()
    stage.enqueue(work.workflows, work.num_steps, work.step_seconds)
    stage.run_until(
        lambda: (
            stage.deployment.ready_replicas() >= 2
            and stage.db.statuses().get("SUCCESS", 0) >= work.workflows // 3
        ),
        timeout=_drain_timeout(stage, work),
        what="a third done on two or more workers",
    )
    ready = [pod for pod in stage.deployment.pods() if pod.ready]
    lost = ready[: max(1, len(ready) // 2)]
    for pod in lost:
        stage.deployment.kill(pod)
    _drain(stage, work, started)
    figures = _figures(stage, work, start_delay, started, drained_at=stage.now())
    figures["pods_killed"] = len(lost)
    return figures


def ramp(stage: Stage, work: Workload, start_delay: float) -> dict[str, Any]:
    """The enqueue rate rises steadily, then falls back (a triangle, over twice the scale-down
    window), to a trickle that keeps about two workers busy; the trickle goes on until the
    autoscaler has scaled in and settled (so pods are deleted while they run workflows), then
    stops; done when every workflow succeeded."""
    spec = stage.config.autoscaler
    period = 2 * spec.scale_down.stabilization_window_seconds + 1
    started = stage.now()
    sent = 0

    def due() -> int:  # workflows the triangle has sent by now
        x = min(1.0, (stage.now() - started) / period)
        share = 2 * x * x if x <= 0.5 else 1 - 2 * (1 - x) * (1 - x)
        return round(work.workflows * share)

    def keep_sending() -> bool:
        nonlocal sent
        target = due()
        if target > sent:
            stage.enqueue(target - sent, work.num_steps, work.step_seconds)
            sent = target
        return sent >= work.workflows

    stage.run_until(keep_sending, timeout=period + 60, what="the ramp to send everything")
    # The trickle: two workers' worth of work at all times, until the fleet has scaled in to
    # the trickle's level and settled there (no change for a scale-down period and a sync).
    rate = TRICKLE_WORKERS * stage.config.worker_concurrency / work.workflow_seconds
    longest_period = max((p.period_seconds for p in spec.scale_down.policies), default=0.0)
    settle = longest_period + spec.sync_period_seconds
    trickle_started, trickled = stage.now(), 0

    def trickle_until_scaled_in() -> bool:
        nonlocal trickled
        target = round((stage.now() - trickle_started) * rate)
        if target > trickled:
            stage.enqueue(target - trickled, work.num_steps, work.step_seconds)
            trickled = target
        scale_ins = [t for t, _, _ in stage.timeline.scale_ins if t >= trickle_started]
        last_change = stage.timeline.changes[-1][0] if stage.timeline.changes else 0.0
        return bool(scale_ins) and stage.now() - last_change > settle

    stage.run_until(
        trickle_until_scaled_in,
        # Whatever the ramp left queued drains first (a machine slower than the time scale).
        timeout=_drain_timeout(stage, work)
        + spec.scale_down.stabilization_window_seconds
        + spec.max_replicas * longest_period
        + 10 * spec.sync_period_seconds
        + 60,
        what="the workers to scale in under a trickle and settle",
    )
    work = dataclasses.replace(work, workflows=sent + trickled)
    _drain(stage, work, started)
    return _figures(stage, work, start_delay, started, drained_at=stage.now())


SCENARIOS: dict[str, Scenario] = {
    "burst": burst,
    "lull": lull,
    "ramp": ramp,
    "outage": outage,
    "node-loss": node_loss,
}


def _drain_timeout(stage: Stage, work: Workload) -> float:
    """Generous: the work on a single worker, plus a few minutes of the rehearsal's clock."""
    single = math.ceil(work.workflows / stage.config.worker_concurrency) * work.workflow_seconds
    return single + 20 * stage.config.autoscaler.sync_period_seconds + 60


def _drain(stage: Stage, work: Workload, started: float) -> None:
    stage.run_until(
        lambda: stage.db.statuses().get("SUCCESS", 0) >= work.workflows,
        timeout=_drain_timeout(stage, work),
        what=f"all {work.workflows} workflows to succeed",
    )


def _back_to_min(stage: Stage) -> None:
    spec = stage.config.autoscaler
    minimum = stage.config.min_replicas
    window = spec.scale_down.stabilization_window_seconds
    longest_period = max((p.period_seconds for p in spec.scale_down.policies), default=0.0)
    activation = stage.config.keda_activation
    # To zero, KEDA's cooldown and its next check come on top.
    wake = (
        activation.cooldown_seconds + activation.polling_interval_seconds
        if activation is not None and minimum == 0
        else 0.0
    )
    stage.run_until(
        lambda: (
            stage.deployment.replicas == minimum
            and stage.deployment.ready_replicas() == minimum
            and len(stage.deployment.pods()) == minimum
        ),
        timeout=window
        + spec.max_replicas * longest_period
        + 10 * spec.sync_period_seconds
        + wake
        + 60,
        what=f"the workers back to {minimum}",
    )


def _figures(
    stage: Stage, work: Workload, start_delay: float, started: float, drained_at: float
) -> dict[str, Any]:
    spec = stage.config.autoscaler
    statuses = stage.db.statuses()
    # The queue may have emptied before the scenario looked (during an outage): the first sync
    # that saw every workflow done, if earlier.
    done = [s.t for s in stage.timeline.samples if s.t >= started and s.succeeded >= work.workflows]
    if done:
        drained_at = min(drained_at, done[0])
    capacity = spec.max_replicas * stage.config.worker_concurrency
    ideal = work.workflows * work.workflow_seconds / capacity + start_delay
    timeline = stage.timeline
    return {
        "workflows_enqueued": work.workflows,
        "workflows_succeeded": statuses.get("SUCCESS", 0),
        "workflows_lost": work.workflows - statuses.get("SUCCESS", 0),
        "steps_reexecuted": stage.step_reexecutions(),
        "drain_seconds": round(drained_at - started, 2),
        "ideal_drain_seconds": round(ideal, 2),
        "drain_vs_ideal": round((drained_at - started) / ideal, 2),
        "max_ready_replicas": max((s.ready for s in timeline.samples), default=0),
        "replica_changes": len(timeline.changes),
        "direction_reversals": direction_reversals(
            timeline.changes,
            max(
                spec.scale_up.stabilization_window_seconds,
                spec.scale_down.stabilization_window_seconds,
            ),
        ),
        "outage_replica_changes": sum(
            1 for t, _, _ in timeline.changes for a, b in timeline.outages if a <= t <= b
        ),
        "pods_scaled_in": len(timeline.scale_ins),
        "busy_pods_scaled_in": sum(1 for _, _, running in timeline.scale_ins if running),
        "workflows_running_at_scale_in": sum(running for _, _, running in timeline.scale_ins),
    }


def direction_reversals(changes: list[tuple[float, int, int]], window_seconds: float) -> int:
    """Changes against the direction of the previous one, within the window of it: flapping."""
    reversals = 0
    for (t0, a0, b0), (t1, a1, b1) in itertools.pairwise(changes):
        if (b0 - a0) * (b1 - a1) < 0 and t1 - t0 <= window_seconds:
            reversals += 1
    return reversals


def targets(scenario: str, figures: dict[str, Any]) -> dict[str, bool]:
    """The rehearsal's targets that apply to this scenario, met or not (printed, not asserted)."""
    met = {"nothing lost": figures["workflows_lost"] == 0}
    if scenario.startswith("burst"):
        met["drained within 1.3x of the ideal"] = figures["drain_vs_ideal"] <= 1.3
    if scenario.startswith(("burst", "lull")):
        met["no flapping"] = figures["direction_reversals"] == 0
    if scenario in ("lull", "ramp", "outage"):
        met["scale-in re-ran no step"] = figures["steps_reexecuted"] == 0
    if scenario == "ramp":
        met["scale-in deleted busy pods (what the ramp rehearses)"] = (
            figures["busy_pods_scaled_in"] > 0
        )
    if scenario == "outage":
        met["replicas held through the outage"] = figures["outage_replica_changes"] == 0
    return met

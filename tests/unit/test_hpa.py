"""The rehearsal's HPA stand-in reproduces the worked examples of the Kubernetes "Horizontal Pod
Autoscaling" page (kubernetes.io/docs/concepts/workloads/autoscaling/horizontal-pod-autoscale/)
and, where the page is silent or differs, kube-controller-manager's source
(pkg/controller/podautoscaler/horizontal.go, replica_calculator.go). Expected values are worked
out from the documented rule in each test, not read back from the implementation."""

import math
from dataclasses import replace
from typing import Any

import pytest
import yaml

from benchmarks.rehearsal.hpa import (
    HpaController,
    HpaSpec,
    Policy,
    ScalingRules,
    parse_quantity,
)

SYNC = 15  # --horizontal-pod-autoscaler-sync-period default


# The "Default behavior" block of the page, verbatim.
DOC_DEFAULT_BEHAVIOR = """
behavior:
  scaleDown:
    stabilizationWindowSeconds: 300
    policies:
    - type: Percent
      value: 100
      periodSeconds: 15
  scaleUp:
    stabilizationWindowSeconds: 0
    policies:
    - type: Percent
      value: 100
      periodSeconds: 15
    - type: Pods
      value: 4
      periodSeconds: 15
    selectPolicy: Max
"""


def manifest(
    behavior: Any = None,
    *,
    average_value: Any = "1",
    min_replicas: int | None = 1,
    max_replicas: int = 100,
) -> dict[str, Any]:
    """An HPA as the chart renders it: one External metric with an AverageValue target."""
    spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "w"},
        "maxReplicas": max_replicas,
        "metrics": [
            {
                "type": "External",
                "external": {
                    "metric": {"name": "queue_worker_queue_load"},
                    "target": {"type": "AverageValue", "averageValue": average_value},
                },
            }
        ],
    }
    if min_replicas is not None:
        spec["minReplicas"] = min_replicas
    if behavior is not None:
        spec["behavior"] = behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "w"},
        "spec": spec,
    }


def controller(behavior_yaml: str = DOC_DEFAULT_BEHAVIOR, **kwargs: Any) -> HpaController:
    """A controller for an HPA with this behavior (the chart always sets one)."""
    behavior = yaml.safe_load(behavior_yaml)["behavior"]
    return HpaController(HpaSpec.from_manifest(manifest(behavior, **kwargs)))


# Scale down at once, so a test sees the metric's proposal (stabilization has its own tests).
NO_DOWNSCALE_WINDOW = """
behavior:
  scaleDown:
    stabilizationWindowSeconds: 0
"""


def test_doc_algorithm_example_200m_over_100m_doubles_the_replicas() -> None:
    # "Algorithm details": current 200m, desired 100m -> replicas doubled. With an AverageValue
    # External target the current value is the metric divided by the replicas.
    hpa = controller(average_value="100m")
    replicas, per_pod = 3, 0.200
    assert hpa.sync(0, replicas, per_pod * replicas) == math.ceil(replicas * 200 / 100)
    assert hpa.last_reason == "scale-up"


def test_doc_algorithm_example_50m_over_100m_halves_the_replicas() -> None:
    # "Algorithm details": current 50m, desired 100m -> replicas halved.
    hpa = controller(NO_DOWNSCALE_WINDOW, average_value="100m")
    replicas, per_pod = 4, 0.050
    assert hpa.sync(0, replicas, per_pod * replicas) == math.ceil(replicas * 50 / 100)
    assert hpa.last_reason == "scale-down"


@pytest.mark.parametrize(
    ("load_per_replica", "expected"),
    [
        (1.10, 10),  # ratio 1.1: within the 0.1 tolerance (inclusive), no action
        (1.11, math.ceil(10 * 1.11)),  # just outside: ceil(ratio * replicas)
        (0.90, 10),
        (0.89, math.ceil(10 * 0.89)),
    ],
)
def test_doc_tolerance_skips_ratios_close_to_one(load_per_replica: float, expected: int) -> None:
    # "Algorithm details": "skips any scaling action if the ratio is sufficiently close to 1.0
    # (within a configurable tolerance, 0.1 by default)".
    hpa = controller(NO_DOWNSCALE_WINDOW)
    assert hpa.sync(0, 10, load_per_replica * 10) == expected
    if expected == 10:
        assert hpa.last_reason == "within-tolerance"


def test_doc_configurable_tolerance_scale_up_only_above_105_mib() -> None:
    # "Tolerance": target 100MiB with scaleUp tolerance 0.05 scales up only above 105MiB; scale
    # down keeps the cluster-wide 10%.
    behavior = """
behavior:
  scaleUp:
    tolerance: 0.05
  scaleDown:
    stabilizationWindowSeconds: 0
"""
    cases = [(105, 10), (106, math.ceil(10 * 106 / 100)), (91, 10), (89, math.ceil(10 * 89 / 100))]
    for per_pod_mib, expected in cases:
        hpa = controller(behavior, average_value="100Mi")
        assert hpa.sync(0, 10, 10 * per_pod_mib * 2**20) == expected, per_pod_mib


def doc_pods_4_or_10_percent_step(replicas: int) -> int:
    """The page's rule: remove 4 Pods or 10% of the replicas (rounded up), whichever is more."""
    return replicas - max(4, -(-replicas // 10))


def test_doc_scaling_policies_example_80_replicas_down_to_10() -> None:
    # "Scaling policies": Pods 4 and Percent 10 per 60 s, the larger change selected; from 80
    # replicas to 10 the first step removes 8, at 72 again 8 (7.2 rounded up), below 40 it is
    # 4 at a time. Each change spends the period, so with 15 s syncs one step per 60 s. (The
    # example's default 300 s window is set to 0 here to see the policies alone.)
    hpa = controller(
        """
behavior:
  scaleDown:
    stabilizationWindowSeconds: 0
    policies:
    - type: Pods
      value: 4
      periodSeconds: 60
    - type: Percent
      value: 10
      periodSeconds: 60
"""
    )
    replicas = expected = 80
    seen = []
    for t in range(0, 20 * 60, SYNC):
        replicas = hpa.sync(t, replicas, 10.0)  # the metric asks for 10 replicas
        if t % 60 == 0 and expected > 10:
            expected = max(10, doc_pods_4_or_10_percent_step(expected))
            seen.append(expected)
        assert replicas == expected, t
    assert seen[:2] == [72, 64]
    assert replicas == 10


def test_doc_select_policy_min_removes_at_most_5_pods_per_minute() -> None:
    # "Example: limit scale down rate": Percent 10 and Pods 5 per 60 s with selectPolicy Min.
    hpa = controller(
        """
behavior:
  scaleDown:
    stabilizationWindowSeconds: 0
    policies:
    - type: Percent
      value: 10
      periodSeconds: 60
    - type: Pods
      value: 5
      periodSeconds: 60
    selectPolicy: Min
"""
    )
    assert hpa.sync(0, 80, 10.0) == 80 - min(5, 8)
    assert [hpa.sync(t, 75, 10.0) for t in (15, 30, 45)] == [75, 75, 75]
    assert hpa.last_reason == "scale-down-limited"
    assert hpa.sync(60, 75, 10.0) == 75 - min(5, 8)


def test_doc_stabilization_window_takes_the_highest_of_the_last_300_s() -> None:
    # "Stabilization window": scaling down uses the highest desired state of the past 5
    # minutes. Load for 5 replicas until t=45, then for 2: the scale-down comes at the first
    # sync with no 5 in the window, which (source: the window is open at its old end) is the
    # first t with t - 300 >= 45.
    hpa = controller("behavior:\n  scaleDown:\n    stabilizationWindowSeconds: 300\n")
    replicas = 5
    for t in range(0, 600, SYNC):
        replicas = hpa.sync(t, replicas, 5.0 if t <= 45 else 2.0)
        assert replicas == (5 if t - 300 < 45 else 2), t
        if 45 < t < 345:
            assert hpa.last_reason == "stabilized"


def test_doc_select_policy_disabled_prevents_scale_down_not_scale_up() -> None:
    # "Example: disable scale down": selectPolicy Disabled turns off scaling in that direction.
    hpa = controller("behavior:\n  scaleDown:\n    selectPolicy: Disabled\n")
    for t in range(0, 30 * 60, SYNC):
        assert hpa.sync(t, 10, 1.0) == 10
    assert hpa.last_reason == "scale-down-disabled"
    assert hpa.sync(30 * 60, 10, 20.0) == 20


def test_doc_default_behavior_is_what_the_api_fills_in() -> None:
    # "Default behavior": "These custom values are merged with default values."
    # (The page lists the scale-up policies in another order than defaults.go; order is moot.)
    documented = HpaSpec.from_manifest(manifest(yaml.safe_load(DOC_DEFAULT_BEHAVIOR)["behavior"]))
    partial: list[dict[str, Any]] = [{}, {"scaleUp": {}, "scaleDown": {}}]
    for behavior in partial:
        spec = HpaSpec.from_manifest(manifest(behavior))
        for mine, theirs in (
            (spec.scale_up, documented.scale_up),
            (spec.scale_down, documented.scale_down),
        ):
            assert set(mine.policies) == set(theirs.policies)
            assert replace(mine, policies=theirs.policies) == theirs


def test_doc_default_behavior_scales_up_by_4_pods_or_100_percent_per_15_s() -> None:
    # "Default behavior": "4 pods or a 100% of the currently running replicas may at most be
    # added every 15 seconds".
    hpa = controller(DOC_DEFAULT_BEHAVIOR)
    replicas = expected = 1
    for t in range(0, 8 * SYNC, SYNC):
        replicas = hpa.sync(t, replicas, 1000.0)
        expected = min(100, max(expected + 4, 2 * expected))
        assert replicas == expected, t
    assert replicas == 100


def test_doc_default_behavior_counts_the_15_s_period_between_faster_syncs() -> None:
    # "Default behavior": the limit is per 15 seconds, however often the controller syncs.
    hpa = controller(DOC_DEFAULT_BEHAVIOR)
    assert hpa.sync(0, 1, 1000.0) == 5
    assert [hpa.sync(t, 5, 1000.0) for t in (5, 10)] == [5, 5]
    assert hpa.last_reason == "scale-up-limited"
    assert hpa.sync(15, 5, 1000.0) == 10


def test_doc_default_behavior_scales_down_to_the_minimum_after_300_s() -> None:
    # "Default behavior": the 300 s window, then a single policy allowing 100% of the replicas
    # to be removed, "which means the scaling target can be scaled down to the minimum".
    hpa = controller(DOC_DEFAULT_BEHAVIOR, min_replicas=2)
    replicas = 10
    for t in range(0, 400, SYNC):
        replicas = hpa.sync(t, replicas, 0.5)  # asks for ceil(0.5) = 1, below the minimum
        assert replicas == (10 if t < 300 else 2), t
    assert hpa.last_reason == "min"


def test_source_without_behavior_the_controller_keeps_its_older_limit() -> None:
    # horizontal.go: with spec.behavior nil, normalizeDesiredReplicas, whose scale-up limit is
    # max(2 * current, 4) (calculateScaleUpLimit), not the default behavior's current + 4.
    spec = HpaSpec.from_manifest(manifest())
    assert spec.behavior_omitted
    hpa = HpaController(spec)
    replicas = expected = 1
    for t in range(0, 8 * SYNC, SYNC):
        replicas = hpa.sync(t, replicas, 1000.0)
        expected = min(100, max(2 * expected, 4))
        assert replicas == expected, t
    with_behavior = controller(DOC_DEFAULT_BEHAVIOR)
    assert (HpaController(spec).sync(0, 1, 1000.0), with_behavior.sync(0, 1, 1000.0)) == (4, 5)


def test_source_without_behavior_scale_down_waits_for_the_downscale_window() -> None:
    # horizontal.go stabilizeRecommendation: the highest recommendation of the last
    # --horizontal-pod-autoscaler-downscale-stabilization (300 s), this window closed at its
    # old end; no rate limit below it.
    hpa = HpaController(HpaSpec.from_manifest(manifest()))
    replicas = 10
    for t in range(0, 400, SYNC):
        replicas = hpa.sync(t, replicas, 1.0)
        assert replicas == (10 if t <= 300 else 1), t


def test_source_percent_policies_round_in_float64() -> None:
    # horizontal.go calculateScaleUpLimitWithScalingRules rounds up
    # float64(periodStart) * (1 + value/100), calculateScaleDownLimitWithBehaviors truncates
    # float64(periodStart) * (1 - value/100): float64, not exact, arithmetic. 10% more than 50
    # is 55, but 50 * 1.1 is 55.00000000000001, so 56 are allowed; 80% fewer than 10 is 2, but
    # 10 * (1 - 0.8) is 1.9999999999999996, so 1.
    up = controller(
        "behavior:\n  scaleUp:\n"
        "    policies:\n    - {type: Percent, value: 10, periodSeconds: 60}\n"
    )
    assert up.sync(0, 50, 100.0) == math.ceil(50 * (1 + 10 / 100)) == 56
    down = controller(
        "behavior:\n  scaleDown:\n    stabilizationWindowSeconds: 0\n"
        "    policies:\n    - {type: Percent, value: 80, periodSeconds: 60}\n"
    )
    assert down.sync(0, 10, 0.5) == int(10 * (1 - 80 / 100)) == 1


def test_source_usage_ratio_divides_by_the_pods_that_exist() -> None:
    # replica_calculator.go GetExternalPerPodMetricReplicas: the ratio is over status.replicas
    # and, within tolerance, the proposal is that count; stabilization then holds the scale.
    hpa = controller()
    assert hpa.sync(0, 4, 2.2, status_replicas=2) == 4
    assert hpa.last_metric_replicas == 2
    assert hpa.last_reason == "stabilized"


def test_source_scale_up_window_takes_the_lowest_recent_recommendation() -> None:
    # horizontal.go stabilizeRecommendationWithBehaviors: scaling up uses the lowest
    # recommendation of the scale-up window (open at its old end), then the rate limit
    # (here the default: 4 Pods or 100% per 15 s).
    hpa = controller("behavior:\n  scaleUp:\n    stabilizationWindowSeconds: 60\n")
    replicas = 2
    for t in range(0, 120, SYNC):
        replicas = hpa.sync(t, replicas, 2.0 if t == 0 else 10.0)
        assert replicas == (2 if t < 60 else 6 if t == 60 else 10), t


def test_metric_missing_keeps_the_replicas_and_records_no_recommendation() -> None:
    # horizontal.go: a failed metric read returns before any recommendation is recorded, so
    # syncs without a metric do not hold a later scale-down (only the first sync's current
    # count, recordInitialRecommendation, does).
    hpa = controller()
    assert hpa.sync(0, 5, 5.0) == 5
    for t in range(SYNC, 300, SYNC):
        assert hpa.sync(t, 5, None) == 5
        assert hpa.last_reason == "metric-missing"
    assert hpa.sync(300, 5, 2.0) == 2


def test_zero_replicas_disables_autoscaling() -> None:
    # "Implicit maintenance-mode deactivation": target at 0 and minReplicas > 0 -> no scaling.
    hpa = controller()
    assert hpa.sync(0, 0, 50.0) == 0
    assert hpa.last_reason == "disabled"


def test_max_and_min_clamp() -> None:
    hpa = controller(max_replicas=10)
    assert hpa.sync(0, 8, 50.0) == 10  # 16 allowed by the rate, 10 by maxReplicas
    assert hpa.last_reason == "max"
    # Outside the bounds the controller goes to them without reading the metric.
    assert controller(max_replicas=10).sync(0, 12, None) == 10
    assert controller(min_replicas=3).sync(0, 2, None) == 3
    assert controller(NO_DOWNSCALE_WINDOW, min_replicas=3).sync(0, 6, 0.0) == 3


def test_from_manifest_reads_the_charts_hpa() -> None:
    behavior = yaml.safe_load(
        """
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - {type: Percent, value: 100, periodSeconds: 15}
    - {type: Pods, value: 4, periodSeconds: 15}
  selectPolicy: Max
scaleDown:
  stabilizationWindowSeconds: 300
  policies:
    - {type: Percent, value: 50, periodSeconds: 60}
  selectPolicy: Max
"""
    )
    spec = HpaSpec.from_manifest(manifest(behavior, min_replicas=1, max_replicas=10))
    assert spec == HpaSpec(
        min_replicas=1,
        max_replicas=10,
        target_average_value=1.0,
        scale_up=ScalingRules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15))),
        scale_down=ScalingRules(300, "Max", (Policy("Percent", 50, 60),)),
    )
    assert (spec.tolerance, spec.sync_period_seconds, spec.behavior_omitted) == (0.1, 15.0, False)


def test_from_manifest_defaults() -> None:
    # minReplicas defaults to 1; a scaleDown without a window takes the controller's 300 s and
    # a missing selectPolicy is Max; the other direction keeps its defaults.
    behavior = {"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    spec = HpaSpec.from_manifest(manifest(behavior, min_replicas=None))
    assert spec.min_replicas == 1
    assert spec.scale_down == ScalingRules(300, "Max", (Policy("Pods", 1, 60),))
    assert spec.scale_up == ScalingRules(
        0, "Max", (Policy("Pods", 4, 15), Policy("Percent", 100, 15))
    )


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        ("1", 1.0),
        ("500m", 0.5),
        ("1.5", 1.5),
        ("2k", 2000.0),
        ("1Ki", 1024.0),
        ("1e3", 1000.0),
        (2, 2.0),
        (0.25, 0.25),
        ("250u", 0.00025),
    ],
)
def test_from_manifest_reads_quantities(quantity: object, value: float) -> None:
    assert parse_quantity(quantity) == value
    assert HpaSpec.from_manifest(manifest(average_value=quantity)).target_average_value == value


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"average_value": "abc"}, "averageValue"),
        ({"average_value": "1.5.5"}, "averageValue"),
        ({"average_value": "0"}, "averageValue"),
        ({"average_value": "-1"}, "averageValue"),
        ({"min_replicas": 0}, "minReplicas"),
        ({"min_replicas": 5, "max_replicas": 4}, "maxReplicas"),
        ({"behavior": {"scaleUp": {"policies": []}}}, "scaleUp.policies"),
        ({"behavior": {"scaleUp": {"selectPolicy": "Avg"}}}, "selectPolicy"),
        ({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 3601}}}, "stabilization"),
        (
            {"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 1}]}}},
            "periodSeconds",
        ),
        (
            {
                "behavior": {
                    "scaleDown": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 1}]}
                }
            },
            r"policies\[0\].value",
        ),
        (
            {
                "behavior": {
                    "scaleDown": {"policies": [{"type": "Each", "value": 1, "periodSeconds": 1}]}
                }
            },
            "type",
        ),
    ],
)
def test_from_manifest_names_what_is_wrong(change: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        HpaSpec.from_manifest(manifest(**change))


def test_from_manifest_wants_one_external_average_value_metric() -> None:
    wrong = manifest()
    wrong["spec"]["metrics"][0]["external"]["target"] = {"type": "Value", "value": "1"}
    with pytest.raises(ValueError, match="AverageValue"):
        HpaSpec.from_manifest(wrong)
    two = manifest()
    two["spec"]["metrics"] *= 2
    with pytest.raises(ValueError, match="exactly one"):
        HpaSpec.from_manifest(two)
    missing = manifest()
    del missing["spec"]["maxReplicas"]
    with pytest.raises(ValueError, match="maxReplicas"):
        HpaSpec.from_manifest(missing)


def test_scaled_divides_every_duration() -> None:
    spec = HpaSpec.from_manifest(manifest(yaml.safe_load(DOC_DEFAULT_BEHAVIOR)["behavior"]))
    fast = spec.scaled(10)
    assert fast.sync_period_seconds == 1.5
    assert fast.scale_down.stabilization_window_seconds == 30
    assert [p.period_seconds for p in fast.scale_up.policies] == [1.5, 1.5]
    assert [p.period_seconds for p in fast.scale_down.policies] == [1.5]
    assert (fast.tolerance, fast.min_replicas, fast.max_replicas) == (0.1, 1, 100)
    # Ten times faster, the 300 s scale-down comes after 30 s.
    hpa = HpaController(fast)
    assert [hpa.sync(t * 1.5, 10, 1.0) for t in (0, 19, 20)] == [10, 10, 1]
    for bad in (0, -1):
        with pytest.raises(ValueError, match="time_scale"):
            spec.scaled(bad)

"""The HPA's decisions: stands in for kube-controller-manager's HorizontalPodAutoscaler controller
in the autoscaling rehearsal.

Owns one autoscaling/v2 HorizontalPodAutoscaler with a single External metric and an AverageValue
target: reading it from a rendered manifest (with the API server's defaults and validation), and,
once per sync, the replica count the controller would write to the Deployment's scale.

Follows the Kubernetes source of the v1.36 line: pkg/controller/podautoscaler/horizontal.go
(reconcileAutoscaler, stabilizeRecommendationWithBehaviors, convertDesiredReplicasWithBehaviorRate,
calculateScaleUpLimitWithScalingRules, calculateScaleDownLimitWithBehaviors, storeScaleEvent, and
the older normalizeDesiredReplicas used when spec.behavior is absent), replica_calculator.go
(GetExternalPerPodMetricReplicas, Tolerances), pkg/apis/autoscaling/v2/defaults.go and
pkg/apis/autoscaling/validation. These read the same since v1.28 but for the per-direction
tolerance (HPAConfigurableTolerance: v1.33, on by default since v1.35). Feature gates are at their
defaults: HPAConfigurableTolerance on, HPAScaleToZero off.

Where the "Horizontal Pod Autoscaling" page and the source differ, this follows the source:

- The metric is divided by the Deployment's status.replicas (Pods that exist, ready or not), not by
  the Running and Ready Pods the page describes; within tolerance the proposal is that count.
- The metric and the target are taken in thousandths, rounded up (Quantity.MilliValue).
- Windows and periods are open at their old end: a recommendation or a scale event exactly a
  window (or period) old no longer counts.
- Without spec.behavior the controller does not apply the page's "default behavior" but its
  older rules: the highest recommendation of the last 300 s (--horizontal-pod-autoscaler-downscale-
  stabilization), then at most max(2 x current, 4) replicas per sync. From 1 replica that allows 4,
  where the default behavior would allow 5.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]

_MAX_INT32 = 2**31 - 1
_MIN_INT32 = -(2**31)
# horizontal.go's scaleUpLimitFactor and scaleUpLimitMinimum: the scale-up limit without behavior.
_LEGACY_SCALE_UP_FACTOR = 2.0
_LEGACY_SCALE_UP_MINIMUM = 4.0
# pkg/apis/autoscaling/validation: MaxStabilizationWindowSeconds, MaxPeriodSeconds.
_MAX_WINDOW_SECONDS = 3600
_MAX_PERIOD_SECONDS = 1800
# kube-controller-manager's --horizontal-pod-autoscaler-downscale-stabilization default, which
# stands for a scaleDown without stabilizationWindowSeconds (maybeInitScaleDownStabilizationWindow).
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS = 300.0


@dataclass(frozen=True)
class Policy:
    """One HPAScalingPolicy: at most `value` Pods, or `value` percent of the replicas at the
    period's start, of change within any `period_seconds`."""

    type: PolicyType
    value: int
    period_seconds: float

    def __post_init__(self) -> None:
        if self.type not in ("Pods", "Percent"):
            raise ValueError(f"policy type {self.type!r} is neither Pods nor Percent")
        if self.value <= 0:
            raise ValueError(f"policy value {self.value} must be greater than zero")
        if self.period_seconds <= 0:
            raise ValueError(
                f"policy periodSeconds {self.period_seconds} must be greater than zero"
            )


@dataclass(frozen=True)
class ScalingRules:
    """HPAScalingRules for one direction. `tolerance` None means the controller's flag."""

    stabilization_window_seconds: float
    select_policy: SelectPolicy
    policies: tuple[Policy, ...]
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if self.stabilization_window_seconds < 0:
            raise ValueError(
                f"stabilizationWindowSeconds {self.stabilization_window_seconds} is negative"
            )
        if self.select_policy not in ("Max", "Min", "Disabled"):
            raise ValueError(f"selectPolicy {self.select_policy!r} is not Max, Min or Disabled")
        if not self.policies:
            raise ValueError("policies: at least one policy is required")
        if self.tolerance is not None and self.tolerance < 0:
            raise ValueError(f"tolerance {self.tolerance} is negative")


# pkg/apis/autoscaling/v2/defaults.go: what the API server fills in for a missing scaleUp or
# scaleDown (or a missing field of one) when spec.behavior is set.
DEFAULT_SCALE_UP = ScalingRules(
    stabilization_window_seconds=0.0,
    select_policy="Max",
    policies=(Policy("Pods", 4, 15.0), Policy("Percent", 100, 15.0)),
)
DEFAULT_SCALE_DOWN = ScalingRules(
    stabilization_window_seconds=DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    select_policy="Max",
    policies=(Policy("Percent", 100, 15.0),),
)


@dataclass(frozen=True)
class HpaSpec:
    """What the controller reads of the HPA, plus its own flags (tolerance, sync period).

    `behavior_omitted`: the manifest had no spec.behavior. The controller then ignores scale_up
    and scale_down (from_manifest fills them with the defaults) and normalizes with its older
    rules: the highest recommendation within scale_down's window, then at most
    max(2 x current, 4) replicas, with no scale events kept.
    """

    min_replicas: int
    max_replicas: int
    target_average_value: float
    scale_up: ScalingRules
    scale_down: ScalingRules
    tolerance: float = 0.1
    sync_period_seconds: float = 15.0
    behavior_omitted: bool = False

    def __post_init__(self) -> None:
        if self.min_replicas < 1:
            raise ValueError(
                f"minReplicas {self.min_replicas} is below 1: scaling to zero needs the "
                "HPAScaleToZero feature gate (alpha, off by default), not modelled here"
            )
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"maxReplicas {self.max_replicas} is below minReplicas {self.min_replicas}"
            )
        if not (self.target_average_value > 0 and math.isfinite(self.target_average_value)):
            raise ValueError(f"target averageValue {self.target_average_value} must be positive")
        if self.tolerance < 0:
            raise ValueError(f"tolerance {self.tolerance} is negative")
        if self.sync_period_seconds <= 0:
            raise ValueError(f"sync period {self.sync_period_seconds} must be positive")

    @classmethod
    def from_manifest(cls, hpa: dict[str, Any]) -> HpaSpec:
        """The spec of a rendered autoscaling/v2 HorizontalPodAutoscaler (as yaml.safe_load gives
        it), defaulted as the API server does; ValueError names the field that is wrong."""
        if hpa.get("apiVersion", "autoscaling/v2") != "autoscaling/v2":
            raise ValueError(f"apiVersion {hpa['apiVersion']!r} is not autoscaling/v2")
        if hpa.get("kind", "HorizontalPodAutoscaler") != "HorizontalPodAutoscaler":
            raise ValueError(f"kind {hpa['kind']!r} is not HorizontalPodAutoscaler")
        spec = _mapping(hpa.get("spec"), "spec")
        min_replicas = _integer(spec.get("minReplicas", 1), "spec.minReplicas")
        if "maxReplicas" not in spec:
            raise ValueError("spec.maxReplicas is required")
        max_replicas = _integer(spec["maxReplicas"], "spec.maxReplicas")
        target = _external_average_value(spec.get("metrics"))
        behavior = spec.get("behavior")
        if behavior is None:
            scale_up, scale_down = DEFAULT_SCALE_UP, DEFAULT_SCALE_DOWN
        else:
            behavior = _mapping(behavior, "spec.behavior")
            scale_up = _rules(behavior.get("scaleUp"), DEFAULT_SCALE_UP, "spec.behavior.scaleUp")
            scale_down = _rules(
                behavior.get("scaleDown"), DEFAULT_SCALE_DOWN, "spec.behavior.scaleDown"
            )
        try:
            return cls(
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                target_average_value=target,
                scale_up=scale_up,
                scale_down=scale_down,
                behavior_omitted=behavior is None,
            )
        except ValueError as error:
            raise ValueError(f"spec: {error}") from None

    def scaled(self, time_scale: float) -> HpaSpec:
        """The same HPA with every duration (windows, policy periods, sync period) divided by
        `time_scale`: 10 runs it ten times faster."""
        if not (time_scale > 0 and math.isfinite(time_scale)):
            raise ValueError(f"time_scale {time_scale} must be positive")

        def rules(r: ScalingRules) -> ScalingRules:
            return replace(
                r,
                stabilization_window_seconds=r.stabilization_window_seconds / time_scale,
                policies=tuple(
                    replace(p, period_seconds=p.period_seconds / time_scale) for p in r.policies
                ),
            )

        return replace(
            self,
            scale_up=rules(self.scale_up),
            scale_down=rules(self.scale_down),
            sync_period_seconds=self.sync_period_seconds / time_scale,
        )


@dataclass(frozen=True)
class _Recommendation:
    replicas: int
    timestamp: float


@dataclass
class _ScaleEvent:
    change: int  # absolute
    timestamp: float
    outdated: bool = False


class HpaController:
    """Call sync() once per sync period with the time (seconds, any monotonic origin), the
    Deployment's current replica count (spec.replicas) and the metric value (None when the metric
    could not be read); it returns the new desired replica count.

    `status_replicas` is the Deployment's status.replicas (its Pods that exist, ready or not),
    which the usage ratio divides by; None takes current_replicas. After each sync, `last_reason`
    says why in a word ("scale-up", "scale-down", "within-tolerance", "stabilized",
    "scale-up-limited", "scale-down-limited", "scale-up-disabled", "scale-down-disabled", "max",
    "min", "metric-missing", "disabled" for 0 replicas, "steady"), and `last_metric_replicas` is
    the replica count the metric alone asked for (None when none was computed).
    """

    def __init__(self, spec: HpaSpec) -> None:
        self.spec = spec
        self.last_reason = "not-synced"
        self.last_metric_replicas: int | None = None
        self._recommendations: list[_Recommendation] | None = None
        self._scale_up_events: list[_ScaleEvent] = []
        self._scale_down_events: list[_ScaleEvent] = []

    def sync(
        self,
        now: float,
        current_replicas: int,
        metric_value: float | None,
        status_replicas: int | None = None,
    ) -> int:
        """One reconcileAutoscaler: the replica count to set (current_replicas for no change)."""
        if current_replicas < 0:
            raise ValueError(f"current_replicas {current_replicas} is negative")
        if metric_value is not None and not math.isfinite(metric_value):
            raise ValueError(f"metric value {metric_value} is not a number; pass None if unread")
        spec = self.spec
        self.last_metric_replicas = None
        # recordInitialRecommendation: the first sync remembers the current count as a
        # recommendation, whatever follows (a missing metric included).
        if self._recommendations is None:
            self._recommendations = [_Recommendation(current_replicas, now)]
        if current_replicas == 0:
            # ScalingDisabled: "scaling is disabled since the replica count of the target is zero"
            self.last_reason = "disabled"
            return 0
        if current_replicas > spec.max_replicas:
            desired, reason = spec.max_replicas, "max"
        elif current_replicas < spec.min_replicas:
            desired, reason = spec.min_replicas, "min"
        elif metric_value is None:
            # computeReplicasForMetrics fails: no recommendation, no scale event, no change.
            self.last_reason = "metric-missing"
            return current_replicas
        else:
            replicas = current_replicas if status_replicas is None else status_replicas
            proposal, within = self._metric_replicas(metric_value, replicas)
            self.last_metric_replicas = proposal
            # reconcileAutoscaler keeps desiredReplicas at 0 unless the metric proposes more.
            proposal = max(proposal, 0)
            if spec.behavior_omitted:
                stabilized = self._stabilize(now, proposal)
                desired, limit = self._limit_without_behavior(current_replicas, stabilized)
            else:
                stabilized = self._stabilize_with_behaviors(now, current_replicas, proposal)
                desired, limit = self._limit_with_behaviors(now, current_replicas, stabilized)
            reason = _reason(current_replicas, proposal, within, stabilized, desired, limit)
        if desired != current_replicas:
            self._store_scale_event(now, current_replicas, desired)
        self.last_reason = reason
        return desired

    def _tolerances(self) -> tuple[float, float]:
        """tolerancesForHpa: (scale down, scale up); behavior's own win when set."""
        spec = self.spec
        if spec.behavior_omitted:
            return spec.tolerance, spec.tolerance
        down = spec.scale_down.tolerance
        up = spec.scale_up.tolerance
        return (
            spec.tolerance if down is None else down,
            spec.tolerance if up is None else up,
        )

    def _metric_replicas(self, metric_value: float, status_replicas: int) -> tuple[int, bool]:
        """GetExternalPerPodMetricReplicas: the proposal, and whether the ratio was within
        tolerance (the proposal then being status_replicas)."""
        usage = _milli_value(metric_value)
        target = _milli_value(self.spec.target_average_value)
        ratio = _divide(float(usage), float(target) * float(status_replicas))
        down, up = self._tolerances()
        if (1.0 - down) <= ratio <= (1.0 + up):
            return status_replicas, True
        replicas = math.ceil(float(usage) / float(target))
        return min(replicas, _MAX_INT32), False

    def _stabilize_with_behaviors(self, now: float, current: int, desired: int) -> int:
        """stabilizeRecommendationWithBehaviors: clamp the current count between the lowest
        recommendation of the scale-up window and the highest of the scale-down window (both
        including this one), then record this one, reusing a slot older than both windows."""
        recommendations = self._recommendations
        assert recommendations is not None
        up_cutoff = now - self.spec.scale_up.stabilization_window_seconds
        down_cutoff = now - self.spec.scale_down.stabilization_window_seconds
        up_recommendation = down_recommendation = desired
        old_index: int | None = None
        for i, rec in enumerate(recommendations):
            if rec.timestamp > up_cutoff:
                up_recommendation = min(rec.replicas, up_recommendation)
            if rec.timestamp > down_cutoff:
                down_recommendation = max(rec.replicas, down_recommendation)
            if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
                old_index = i
        recommendation = current
        if recommendation < up_recommendation:
            recommendation = up_recommendation
        if recommendation > down_recommendation:
            recommendation = down_recommendation
        self._record(old_index, _Recommendation(desired, now))
        return recommendation

    def _stabilize(self, now: float, desired: int) -> int:
        """stabilizeRecommendation (no behavior): the highest recommendation not older than the
        downscale stabilization window, this one included, which replaces an older one."""
        recommendations = self._recommendations
        assert recommendations is not None
        cutoff = now - self.spec.scale_down.stabilization_window_seconds
        highest = desired
        old_index: int | None = None
        for i, rec in enumerate(recommendations):
            if rec.timestamp < cutoff:
                old_index = i
            elif rec.replicas > highest:
                highest = rec.replicas
        self._record(old_index, _Recommendation(desired, now))
        return highest

    def _record(self, old_index: int | None, recommendation: _Recommendation) -> None:
        recommendations = self._recommendations
        assert recommendations is not None
        if old_index is None:
            recommendations.append(recommendation)
        else:
            recommendations[old_index] = recommendation

    def _limit_with_behaviors(
        self, now: float, current: int, desired: int
    ) -> tuple[int, str | None]:
        """convertDesiredReplicasWithBehaviorRate: the rate limits of the scale events history,
        then minReplicas and maxReplicas; the reason when one of them bound."""
        spec = self.spec
        if desired > current:
            limit = self._scale_up_limit(now, current)
            limit = max(limit, current)  # no further scale-up until the events age out
            if spec.max_replicas > limit:
                maximum = limit
                why = (
                    "scale-up-disabled"
                    if spec.scale_up.select_policy == "Disabled"
                    else "scale-up-limited"
                )
            else:
                maximum, why = spec.max_replicas, "max"
            if desired > maximum:
                return maximum, why
        elif desired < current:
            limit = self._scale_down_limit(now, current)
            limit = min(limit, current)  # no further scale-down until the events age out
            if spec.min_replicas < limit:
                minimum = limit
                why = (
                    "scale-down-disabled"
                    if spec.scale_down.select_policy == "Disabled"
                    else "scale-down-limited"
                )
            else:
                minimum, why = spec.min_replicas, "min"
            if desired < minimum:
                return minimum, why
        return desired, None

    def _limit_without_behavior(self, current: int, desired: int) -> tuple[int, str | None]:
        """convertDesiredReplicasWithRules: minReplicas, and at most
        min(maxReplicas, max(2 x current, 4))."""
        spec = self.spec
        scale_up_limit = int(
            max(_LEGACY_SCALE_UP_FACTOR * float(current), _LEGACY_SCALE_UP_MINIMUM)
        )
        if spec.max_replicas > scale_up_limit:
            maximum, why = scale_up_limit, "scale-up-limited"
        else:
            maximum, why = spec.max_replicas, "max"
        if desired < spec.min_replicas:
            return spec.min_replicas, "min"
        if desired > maximum:
            return maximum, why
        return desired, None

    def _scale_up_limit(self, now: float, current: int) -> int:
        """calculateScaleUpLimitWithScalingRules."""
        rules = self.spec.scale_up
        if rules.select_policy == "Disabled":
            return current
        pick_min = rules.select_policy == "Min"
        result = _MAX_INT32 if pick_min else _MIN_INT32
        for policy in rules.policies:
            added = _change_in_period(now, policy.period_seconds, self._scale_up_events)
            deleted = _change_in_period(now, policy.period_seconds, self._scale_down_events)
            period_start = current - added + deleted
            if policy.type == "Pods":
                proposed = period_start + policy.value
            else:
                # Rounded up, or a small target would never scale up.
                proposed = math.ceil(float(period_start) * (1 + float(policy.value) / 100))
            result = min(result, proposed) if pick_min else max(result, proposed)
        return result

    def _scale_down_limit(self, now: float, current: int) -> int:
        """calculateScaleDownLimitWithBehaviors."""
        rules = self.spec.scale_down
        if rules.select_policy == "Disabled":
            return current
        pick_min_change = rules.select_policy == "Min"
        result = _MIN_INT32 if pick_min_change else _MAX_INT32
        for policy in rules.policies:
            added = _change_in_period(now, policy.period_seconds, self._scale_up_events)
            deleted = _change_in_period(now, policy.period_seconds, self._scale_down_events)
            period_start = current - added + deleted
            if policy.type == "Pods":
                proposed = period_start - policy.value
            else:
                # int32() truncates toward zero: the Pods removed are rounded up.
                proposed = int(float(period_start) * (1 - float(policy.value) / 100))
            result = max(result, proposed) if pick_min_change else min(result, proposed)
        return result

    def _store_scale_event(self, now: float, previous: int, new: int) -> None:
        """storeScaleEvent: remember the change, reusing a slot older than the direction's
        longest policy period. Nothing is kept without behavior."""
        if self.spec.behavior_omitted:
            return
        if new > previous:
            rules, events, change = self.spec.scale_up, self._scale_up_events, new - previous
        else:
            rules, events, change = self.spec.scale_down, self._scale_down_events, previous - new
        longest = max((p.period_seconds for p in rules.policies), default=0.0)
        cutoff = now - longest
        old_index: int | None = None
        for i, event in enumerate(events):
            if event.timestamp < cutoff:
                event.outdated = True
            if event.outdated:
                old_index = i
        if old_index is None:
            events.append(_ScaleEvent(change, now))
        else:
            events[old_index] = _ScaleEvent(change, now)


def _reason(
    current: int,
    proposal: int,
    within: bool,
    stabilized: int,
    desired: int,
    limit: str | None,
) -> str:
    if limit is not None:
        return limit
    if stabilized != proposal:
        return "stabilized"
    if within and desired == current:
        return "within-tolerance"
    if desired > current:
        return "scale-up"
    if desired < current:
        return "scale-down"
    return "steady"


def _change_in_period(now: float, period_seconds: float, events: list[_ScaleEvent]) -> int:
    """getReplicasChangePerPeriod: the replicas changed by events younger than the period."""
    cutoff = now - period_seconds
    return sum(event.change for event in events if event.timestamp > cutoff)


def _divide(numerator: float, denominator: float) -> float:
    """Go's float64 division: x/0 is ±Inf, 0/0 is NaN (which no tolerance holds)."""
    if denominator == 0:
        return math.nan if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / denominator


def _milli_value(value: float) -> int:
    """Quantity.MilliValue: thousandths, rounded up (after shedding float noise such as
    0.1 * 3 = 0.30000000000000004)."""
    return math.ceil(round(value * 1000, 6))


# A Kubernetes quantity: a signed decimal number, then an SI suffix, a binary suffix or an
# exponent (k8s.io/apimachinery/pkg/api/resource).
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$"
)
_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(quantity: object, where: str = "quantity") -> float:
    """A Kubernetes quantity ("1", "500m", "1.5", "2k", "1Ki", "1e3", or a YAML number)."""
    if isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)):
        raise ValueError(f"{where}: {quantity!r} is not a quantity")
    text = str(quantity).strip() if isinstance(quantity, str) else repr(quantity)
    match = _QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{where}: {quantity!r} is not a quantity")
    try:
        number = Decimal(match["number"])
        if match["exponent"] is not None:
            number = number.scaleb(int(match["exponent"][1:]))
        else:
            number *= _SUFFIXES[match["suffix"] or ""]
    except InvalidOperation as error:
        raise ValueError(f"{where}: {quantity!r} is not a quantity") from error
    return float(number)


def _mapping(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} is missing or not a mapping")
    return value


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {value!r} is not an integer")
    return value


def _external_average_value(metrics: object) -> float:
    """The target.averageValue of the one External metric."""
    if not isinstance(metrics, list) or len(metrics) != 1:
        raise ValueError("spec.metrics must hold exactly one metric (an External one)")
    metric = _mapping(metrics[0], "spec.metrics[0]")
    if metric.get("type") != "External":
        raise ValueError(f"spec.metrics[0].type {metric.get('type')!r} is not External")
    external = _mapping(metric.get("external"), "spec.metrics[0].external")
    target = _mapping(external.get("target"), "spec.metrics[0].external.target")
    where = "spec.metrics[0].external.target"
    if target.get("type") != "AverageValue":
        raise ValueError(f"{where}.type {target.get('type')!r} is not AverageValue")
    if "averageValue" not in target:
        raise ValueError(f"{where}.averageValue is required")
    value = parse_quantity(target["averageValue"], f"{where}.averageValue")
    if not value > 0:
        raise ValueError(f"{where}.averageValue {target['averageValue']!r} must be positive")
    return value


def _rules(rules: object, default: ScalingRules, where: str) -> ScalingRules:
    """copyHPAScalingRules over the defaults, then validateScalingRules."""
    if rules is None:
        return default
    given = _mapping(rules, where)
    window: float = default.stabilization_window_seconds
    if "stabilizationWindowSeconds" in given:
        seconds = _integer(
            given["stabilizationWindowSeconds"], f"{where}.stabilizationWindowSeconds"
        )
        if not 0 <= seconds <= _MAX_WINDOW_SECONDS:
            raise ValueError(
                f"{where}.stabilizationWindowSeconds {seconds} is not within "
                f"0..{_MAX_WINDOW_SECONDS}"
            )
        window = float(seconds)
    select = given.get("selectPolicy", default.select_policy)
    if select not in ("Max", "Min", "Disabled"):
        raise ValueError(f"{where}.selectPolicy {select!r} is not Max, Min or Disabled")
    policies = default.policies
    if "policies" in given:
        policies = _policies(given["policies"], f"{where}.policies")
    tolerance = default.tolerance
    if "tolerance" in given:
        tolerance = parse_quantity(given["tolerance"], f"{where}.tolerance")
        if tolerance < 0:
            raise ValueError(f"{where}.tolerance {given['tolerance']!r} is negative")
    return ScalingRules(window, select, policies, tolerance)


def _policies(value: object, where: str) -> tuple[Policy, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: at least one policy is required")
    policies = []
    for i, item in enumerate(value):
        policy = _mapping(item, f"{where}[{i}]")
        kind = policy.get("type")
        if kind not in ("Pods", "Percent"):
            raise ValueError(f"{where}[{i}].type {kind!r} is neither Pods nor Percent")
        amount = _integer(policy.get("value"), f"{where}[{i}].value")
        if amount <= 0:
            raise ValueError(f"{where}[{i}].value {amount} must be greater than zero")
        period = _integer(policy.get("periodSeconds"), f"{where}[{i}].periodSeconds")
        if not 0 < period <= _MAX_PERIOD_SECONDS:
            raise ValueError(
                f"{where}[{i}].periodSeconds {period} is not within 1..{_MAX_PERIOD_SECONDS}"
            )
        policies.append(Policy(kind, amount, float(period)))
    return tuple(policies)

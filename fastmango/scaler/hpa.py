"""The Kubernetes HorizontalPodAutoscaler's rules, one small pure function each.

Mirrors ``pkg/controller/podautoscaler/replica_calculator.go`` (per-metric proposals,
pod grouping, tolerance, conservative rebalancing of missing and unready pods) and the
behavior functions of ``horizontal.go`` (stabilization window, rate limits with
``selectPolicy``, min/max clamps). Times are Unix seconds passed in by the caller; nothing
here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

#: kube-controller-manager defaults
TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
DOWNSCALE_STABILIZATION = 300.0
MAX_STABILIZATION = 3600.0


class MetricUnavailable(Exception):
    """No usable sample for a metric (the HPA's "did not receive metrics…" error)."""


@dataclass(frozen=True)
class Pod:
    """One pod (instance) as the HPA sees it.

    ``phase`` is Running, Pending, Failed…; ``ready`` is the Ready condition (None = no
    condition yet); ``ready_changed_at`` its last transition; ``metrics`` maps a metric
    name to this pod's value and the time the sample was taken (absent = missing).
    """

    name: str
    phase: str = "Running"
    ready: bool | None = True
    deleting: bool = False
    started_at: float | None = 0.0
    ready_changed_at: float | None = 0.0
    metrics: Mapping[str, float] = field(default_factory=dict)
    sampled_at: float | None = None
    window: float = 60.0


@dataclass(frozen=True)
class Groups:
    """The result of :func:`group_pods`."""

    ready: tuple[str, ...]
    unready: tuple[str, ...]
    missing: tuple[str, ...]
    ignored: tuple[str, ...]


@dataclass(frozen=True)
class Tolerance:
    """Per-direction tolerance (KEP-4951); 0.1 both ways by default."""

    up: float = TOLERANCE
    down: float = TOLERANCE

    def within(self, ratio: float) -> bool:
        """True when ``ratio`` is close enough to 1 to keep the current count."""
        return abs(1.0 - ratio) <= (self.up if ratio > 1.0 else self.down)


def group_pods(
    pods: Iterable[Pod],
    metric: str,
    now: float,
    *,
    cpu: bool = False,
    cpu_initialization_period: float = CPU_INITIALIZATION_PERIOD,
    initial_readiness_delay: float = INITIAL_READINESS_DELAY,
) -> Groups:
    """Split pods as ``groupPods`` does: ignored (deleting/failed), unready (pending, and
    for CPU the not-yet-initialised), missing (no sample), ready (the rest)."""
    ready: list[str] = []
    unready: list[str] = []
    missing: list[str] = []
    ignored: list[str] = []
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            ignored.append(pod.name)
            continue
        if pod.phase == "Pending":
            unready.append(pod.name)
            continue
        if metric not in pod.metrics:
            missing.append(pod.name)
            continue
        if cpu:
            if pod.ready is None or pod.started_at is None:
                is_unready = True
            elif pod.started_at + cpu_initialization_period > now:
                sampled = pod.sampled_at if pod.sampled_at is not None else now
                changed = pod.ready_changed_at or 0.0
                is_unready = (not pod.ready) or sampled < changed + pod.window
            else:
                changed = pod.ready_changed_at or 0.0
                is_unready = (not pod.ready) and pod.started_at + initial_readiness_delay > changed
            if is_unready:
                unready.append(pod.name)
                continue
        ready.append(pod.name)
    return Groups(tuple(ready), tuple(unready), tuple(missing), tuple(ignored))


def usage_ratio(values: Sequence[float], target: float) -> float:
    """Mean value over target (``GetMetricUsageRatio``; for utilization the values are
    percentages of the request, so the mean is the sum over the sum of requests)."""
    if not values:
        raise MetricUnavailable("no samples")
    if target <= 0:
        raise ValueError("target must be positive")
    return (sum(values) / len(values)) / target


def pod_metric_replicas(
    current: int,
    pods: Sequence[Pod],
    metric: str,
    target: float,
    now: float,
    *,
    tolerance: Tolerance = Tolerance(),
    resource: bool = False,
    cpu: bool = False,
) -> tuple[int, float]:
    """Replicas for a per-pod metric (``GetResourceReplicas`` / ``calcPlainMetricReplicas``).

    Returns (replicas, usage ratio over the ready pods). ``resource`` makes a missing pod
    count as 100 % (its request) on a scale-down, otherwise as the target; ``cpu`` applies
    the CPU initialisation rules to readiness. Raises :class:`MetricUnavailable` when no
    ready pod has a sample.
    """
    groups = group_pods(pods, metric, now, cpu=cpu)
    by_name = {p.name: p for p in pods}
    values = {name: float(by_name[name].metrics[metric]) for name in groups.ready}
    if not values:
        raise MetricUnavailable(
            f"did not receive metrics for targeted pods (pods might be unready): {metric}"
        )
    ratio = usage_ratio(list(values.values()), target)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerance.within(ratio):
            return current, ratio
        return math.ceil(ratio * len(groups.ready)), ratio
    if groups.missing and ratio != 1.0:
        # scale-down: a missing pod counts as its request (100 %, or the target if higher)
        # or as the target value; scale-up: as 0
        fill = (max(100.0, target) if resource else target) if ratio < 1.0 else 0.0
        for name in groups.missing:
            values[name] = fill
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0.0
    new_ratio = usage_ratio(list(values.values()), target)
    if (
        tolerance.within(new_ratio)
        or (ratio < 1.0 and new_ratio > 1.0)
        or (ratio > 1.0 and new_ratio < 1.0)
    ):
        return current, ratio
    proposed = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and proposed > current) or (new_ratio > 1.0 and proposed < current):
        return current, ratio
    return proposed, ratio


def ready_pod_count(pods: Iterable[Pod]) -> int:
    """Running pods whose Ready condition is true (``getReadyPodsCount``)."""
    return sum(1 for p in pods if p.phase == "Running" and p.ready and not p.deleting)


def value_replicas(
    current: int, ready: int, value: float, target: float, *, tolerance: Tolerance = Tolerance()
) -> tuple[int, float]:
    """An Object/External metric with a ``Value`` target (``getUsageRatioReplicaCount``):
    ``ceil(ratio × ready pods)``, or ``ceil(ratio)`` from zero replicas."""
    if target <= 0:
        raise ValueError("target must be positive")
    ratio = value / target
    if current == 0:
        return math.ceil(ratio), ratio
    if tolerance.within(ratio):
        return current, ratio
    if ready == 0:
        raise MetricUnavailable("no ready pods to scale from")
    return math.ceil(ratio * ready), ratio


def average_value_replicas(
    status_replicas: int, total: float, per_pod: float, *, tolerance: Tolerance = Tolerance()
) -> tuple[int, float]:
    """An External metric with an ``AverageValue`` target (``GetExternalPerPodMetricReplicas``):
    ``ceil(total / per_pod)`` when ``total / (per_pod × replicas)`` leaves the tolerance."""
    if per_pod <= 0:
        raise ValueError("target must be positive")
    ratio = total / (per_pod * status_replicas) if status_replicas else math.inf
    if tolerance.within(ratio):
        return status_replicas, ratio
    return math.ceil(total / per_pod), ratio


def max_over_metrics(
    proposals: Mapping[str, int], failed: Iterable[str], current: int
) -> tuple[int, str]:
    """The largest proposal and its metric (``computeReplicasForMetrics``).

    When every metric failed, or some failed and the rest propose a scale-down, the HPA
    keeps the current count: a missing metric must never shrink the app.
    """
    failed = list(failed)
    if not proposals:
        raise MetricUnavailable("invalid metrics (" + ", ".join(failed) + "), no proposal")
    name = max(proposals, key=lambda k: (proposals[k], k))
    best = proposals[name]
    if failed and best < current:
        raise MetricUnavailable("invalid metrics (" + ", ".join(failed) + "), scale-down prevented")
    return best, name


# -- behavior ----------------------------------------------------------------------------
PolicyType = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True)
class RatePolicy:
    """One ``HPAScalingPolicy``: at most ``value`` pods or percent per ``period`` seconds."""

    type: PolicyType
    value: int
    period: float = 15.0


@dataclass(frozen=True)
class Rules:
    """``HPAScalingRules`` for one direction."""

    stabilization: float = 0.0
    select: SelectPolicy = "Max"
    policies: tuple[RatePolicy, ...] = ()
    tolerance: float = TOLERANCE


def default_scale_up() -> Rules:
    return Rules(0.0, "Max", (RatePolicy("Pods", 4, 15.0), RatePolicy("Percent", 100, 15.0)))


def default_scale_down() -> Rules:
    return Rules(DOWNSCALE_STABILIZATION, "Max", (RatePolicy("Percent", 100, 15.0),))


@dataclass(frozen=True)
class Behavior:
    """``HorizontalPodAutoscalerBehavior`` with the autoscaling/v2 defaults."""

    scale_up: Rules = field(default_factory=default_scale_up)
    scale_down: Rules = field(default_factory=default_scale_down)

    @property
    def tolerance(self) -> Tolerance:
        return Tolerance(self.scale_up.tolerance, self.scale_down.tolerance)


#: (timestamp, replicas) recommendations and (timestamp, change) scale events
Recommendation = tuple[float, int]
ScaleEvent = tuple[float, int]


def stabilize(
    current: int,
    desired: int,
    recommendations: Sequence[Recommendation],
    now: float,
    behavior: Behavior,
) -> tuple[int, str, str, tuple[Recommendation, ...]]:
    """``stabilizeRecommendationWithBehaviors``: rise to the lowest recommendation in the
    scale-up window, cap at the highest in the scale-down window. Returns the stabilized
    count, reason, message and the recommendations to keep (this one appended, old ones
    dropped)."""
    up_cut = now - min(behavior.scale_up.stabilization, MAX_STABILIZATION)
    down_cut = now - min(behavior.scale_down.stabilization, MAX_STABILIZATION)
    up_rec = down_rec = desired
    kept: list[Recommendation] = []
    for ts, rec in recommendations:
        if ts > up_cut:
            up_rec = min(rec, up_rec)
        if ts > down_cut:
            down_rec = max(rec, down_rec)
        if ts > up_cut or ts > down_cut:
            kept.append((ts, rec))
    result = max(current, up_rec)
    result = min(result, down_rec)
    kept.append((now, desired))
    if desired >= current:
        reason = "ScaleUpStabilized"
        message = (
            "recent recommendations were lower than current one, "
            "applying the lowest recent recommendation"
        )
    else:
        reason = "ScaleDownStabilized"
        message = (
            "recent recommendations were higher than current one, "
            "applying the highest recent recommendation"
        )
    return result, reason, message, tuple(kept)


def change_in_period(period: float, events: Iterable[ScaleEvent], now: float) -> int:
    """``getReplicasChangePerPeriod``: replicas changed within the last ``period`` s."""
    cutoff = now - period
    return sum(change for ts, change in events if ts > cutoff)


def scale_up_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Rules,
    now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``."""
    if rules.select == "Disabled" or not rules.policies:
        return current
    results = []
    for policy in rules.policies:
        start = (
            current
            - change_in_period(policy.period, up_events, now)
            + change_in_period(policy.period, down_events, now)
        )
        if policy.type == "Pods":
            results.append(start + policy.value)
        else:
            results.append(math.ceil(start * (1 + policy.value / 100)))
    return min(results) if rules.select == "Min" else max(results)


def scale_down_limit(
    current: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    rules: Rules,
    now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``."""
    if rules.select == "Disabled" or not rules.policies:
        return current
    results = []
    for policy in rules.policies:
        start = (
            current
            - change_in_period(policy.period, up_events, now)
            + change_in_period(policy.period, down_events, now)
        )
        if policy.type == "Pods":
            results.append(start - policy.value)
        else:
            results.append(int(start * (1 - policy.value / 100)))
    return max(results) if rules.select == "Min" else min(results)


def limit_rate(
    current: int,
    desired: int,
    minimum: int,
    maximum: int,
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    behavior: Behavior,
    now: float,
) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: the rate limits and the min/max clamp."""
    if desired > current:
        limit = max(scale_up_limit(current, up_events, down_events, behavior.scale_up, now),
                    current)  # fmt: skip
        if maximum > limit:
            allowed, reason = limit, "ScaleUpLimit"
            message = "the desired replica count is increasing faster than the maximum scale rate"
        else:
            allowed, reason = maximum, "TooManyReplicas"
            message = "the desired replica count is more than the maximum replica count"
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, up_events, down_events, behavior.scale_down, now),
                    current)  # fmt: skip
        if minimum < limit:
            allowed, reason = limit, "ScaleDownLimit"
            message = "the desired replica count is decreasing faster than the maximum scale rate"
        else:
            allowed, reason = minimum, "TooFewReplicas"
            message = "the desired replica count is less than the minimum replica count"
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale_event(
    up_events: Sequence[ScaleEvent],
    down_events: Sequence[ScaleEvent],
    previous: int,
    new: int,
    behavior: Behavior,
    now: float,
) -> tuple[tuple[ScaleEvent, ...], tuple[ScaleEvent, ...]]:
    """``storeScaleEvent``: remember a change, forgetting events older than the longest
    policy period of their direction."""

    def keep(events: Sequence[ScaleEvent], rules: Rules) -> list[ScaleEvent]:
        longest = max((p.period for p in rules.policies), default=0.0)
        return [(ts, c) for ts, c in events if ts > now - longest]

    ups, downs = keep(up_events, behavior.scale_up), keep(down_events, behavior.scale_down)
    if new > previous:
        ups.append((now, new - previous))
    elif new < previous:
        downs.append((now, previous - new))
    return tuple(ups), tuple(downs)

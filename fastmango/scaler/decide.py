"""``decide(state, observations, policy, now) -> Decision``: one control-loop step.

The HPA's reconcile, with a schedule and a forecast added: bounds come from the policy,
narrowed by the schedule window in force; each target proposes a count by the HPA's own
rule; a usable forecast proposes ``ceil(peak / per-instance capacity at target)`` as one
more metric; the largest proposal wins; then the stabilization window, the rate limits
and the min/max clamp apply to all of it. Pure: the clock, the observations and the
previous state come in, the decision and the next state go out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from fastmango.scaler import hpa
from fastmango.scaler.policy import Policy, Targets


@dataclass(frozen=True)
class Forecast:
    """The forecaster's view: the load peak expected within ``horizon`` seconds.

    ``peak`` is the chosen quantile (req/s or whatever load unit ``capacity`` uses),
    ``low``/``high`` a band around it; ``capacity`` is what one instance serves at the
    target (None = unknown); ``history`` the seconds of history the model learned from;
    ``error`` the recent relative error of its forecasts (None = not measured yet).
    """

    peak: float
    horizon: float
    capacity: float | None
    history: float
    low: float | None = None
    high: float | None = None
    error: float | None = None


@dataclass(frozen=True)
class Observations:
    """What the loop sees now. ``pods`` carry per-instance ``cpu``/``gpu`` percentages;
    ``rps`` is the whole app's requests per second, ``p95`` its latency in seconds."""

    replicas: int
    pods: tuple[hpa.Pod, ...] = ()
    rps: float | None = None
    p95: float | None = None
    forecast: Forecast | None = None

    def inputs(self) -> dict[str, Any]:
        """A JSON-friendly summary for the record of a decision."""
        out: dict[str, Any] = {"replicas": self.replicas, "rps": self.rps, "p95": self.p95}
        out["ready"] = hpa.ready_pod_count(self.pods)
        for metric in ("cpu", "gpu"):
            vals = [p.metrics[metric] for p in self.pods if metric in p.metrics]
            out[metric] = round(sum(vals) / len(vals), 2) if vals else None
        return out


@dataclass(frozen=True)
class State:
    """What the loop remembers between steps (the HPA keeps the same per object)."""

    recommendations: tuple[hpa.Recommendation, ...] = ()
    up_events: tuple[hpa.ScaleEvent, ...] = ()
    down_events: tuple[hpa.ScaleEvent, ...] = ()


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str
    message: str
    state: State
    current: int = 0
    proposals: dict[str, int] = field(default_factory=dict)
    driver: str | None = None
    forecast_status: str = "off"  # off | used | a fallback reason


def effective_bounds(policy: Policy, now: float) -> tuple[int, int, str]:
    """min and max in force at ``now``: the policy's, narrowed by the schedule window."""
    lo, hi = policy.min, policy.max
    schedule = policy.parsed_schedule()
    if schedule is None:
        return lo, hi, ""
    bounds, clause = schedule.bounds_at(now)
    if bounds is None:
        return lo, hi, ""
    if bounds.min is not None:
        lo = bounds.min
    if bounds.max is not None:
        hi = bounds.max
    return min(lo, hi), hi, clause


def forecast_usable(forecast: Forecast | None, policy: Policy) -> tuple[bool, str]:
    """Whether to trust the forecast, and if not, the reason recorded for falling back."""
    if not policy.predictive.enabled:
        return False, "off"
    if forecast is None:
        return False, "NoForecast"
    if forecast.history < policy.predictive.min_history:
        return False, "ForecastHistoryShort"
    if forecast.error is not None and forecast.error > policy.predictive.max_error:
        return False, "ForecastErrorHigh"
    if not forecast.capacity or forecast.capacity <= 0:
        return False, "ForecastNoCapacity"
    if not math.isfinite(forecast.peak) or forecast.peak < 0:
        return False, "ForecastInvalid"
    return True, "used"


def forecast_replicas(forecast: Forecast) -> int:
    """``ceil(peak / capacity)``: instances the forecast peak needs at the target."""
    assert forecast.capacity
    return math.ceil(forecast.peak / forecast.capacity - 1e-9)


def metric_proposals(
    obs: Observations, targets: Targets, tolerance: hpa.Tolerance, now: float
) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """One proposal per target by the HPA's rule for its kind; failures by name."""
    proposals: dict[str, int] = {}
    notes: dict[str, str] = {}
    failed: list[str] = []
    current = obs.replicas
    if targets.cpu is not None:
        try:
            n, ratio = hpa.pod_metric_replicas(
                current, obs.pods, "cpu", targets.cpu, now,
                tolerance=tolerance, resource=True, cpu=True,
            )  # fmt: skip
            proposals["cpu"] = n
            notes["cpu"] = f"cpu {ratio * targets.cpu:.0f}% of target {targets.cpu:g}%"
        except hpa.MetricUnavailable:
            failed.append("cpu")
    if targets.gpu is not None:
        try:
            n, ratio = hpa.pod_metric_replicas(current, obs.pods, "gpu", targets.gpu, now,
                                               tolerance=tolerance, resource=True)  # fmt: skip
            proposals["gpu"] = n
            notes["gpu"] = f"gpu {ratio * targets.gpu:.0f}% of target {targets.gpu:g}%"
        except hpa.MetricUnavailable:
            failed.append("gpu")
    if targets.rps is not None:
        if obs.rps is None:
            failed.append("rps")
        else:
            n, _ = hpa.average_value_replicas(current, obs.rps, targets.rps, tolerance=tolerance)
            proposals["rps"] = n
            notes["rps"] = f"{obs.rps:.1f} req/s at {targets.rps:g} per instance"
    if targets.p95 is not None:
        if obs.p95 is None:
            failed.append("p95")
        else:
            ready = hpa.ready_pod_count(obs.pods) if obs.pods else current
            try:
                n, _ = hpa.value_replicas(current, ready, obs.p95, targets.p95,
                                          tolerance=tolerance)  # fmt: skip
                proposals["p95"] = n
                notes["p95"] = f"p95 {obs.p95 * 1000:.0f}ms vs target {targets.p95 * 1000:.0f}ms"
            except hpa.MetricUnavailable:
                failed.append("p95")
    return proposals, notes, failed


def decide(state: State, obs: Observations, policy: Policy, now: float) -> Decision:
    """One step of the loop; see the module docstring."""
    current = obs.replicas
    lo, hi, clause = effective_bounds(policy, now)
    usable, fstatus = forecast_usable(obs.forecast, policy)
    sched = f" (schedule: {clause})" if clause else ""

    def done(replicas: int, reason: str, message: str, st: State = state, **kw: Any) -> Decision:
        if replicas != current:
            ups, downs = hpa.record_scale_event(st.up_events, st.down_events, current,
                                                replicas, policy.behavior, now)  # fmt: skip
            st = replace(st, up_events=ups, down_events=downs)
        return Decision(replicas, reason, message, st, current=current,
                        forecast_status=fstatus, **kw)  # fmt: skip

    if hi == 0:
        return done(0, "ScheduledOff", f"scaled to zero{sched}")
    if current == 0:
        if lo > 0:
            return done(lo, "ScheduledStart", f"starting {lo} instance(s){sched}")
        if obs.rps:
            return done(1, "Activated", f"{obs.rps:.1f} req/s while at zero: starting one")
        return done(0, "ScaledToZero", f"at zero with no traffic{sched}")
    if current > hi:
        return done(hi, "TooManyReplicas", f"current {current} is above the maximum {hi}{sched}")
    if current < lo:
        return done(lo, "TooFewReplicas", f"current {current} is below the minimum {lo}{sched}")

    proposals, notes, failed = metric_proposals(
        obs, policy.effective_targets, policy.behavior.tolerance, now
    )
    if usable and obs.forecast is not None:
        f = obs.forecast
        proposals["forecast"] = forecast_replicas(f)
        notes["forecast"] = (
            f"forecast peak {f.peak:.1f} within {f.horizon:.0f}s at {f.capacity:.1f} per instance"
        )
    try:
        desired, driver = hpa.max_over_metrics(proposals, failed, current)
    except hpa.MetricUnavailable as exc:
        return done(current, "FailedGetMetrics", f"keeping {current}: {exc}",
                    proposals=proposals)  # fmt: skip
    explain = "; ".join(f"{notes[k]} → {v}" for k, v in sorted(proposals.items()))
    if failed:
        explain += "; missing: " + ", ".join(failed)
    if fstatus not in ("off", "used"):
        explain += f"; forecast not used ({fstatus})"

    behavior = policy.behavior
    if policy.predictive.enabled and not usable:
        down = behavior.scale_down
        window = max(down.stabilization, policy.predictive.fallback_window)
        behavior = replace(behavior, scale_down=replace(down, stabilization=window))
    stabilized, s_reason, s_message, recs = hpa.stabilize(
        current, desired, state.recommendations, now, behavior
    )
    state = replace(state, recommendations=recs)
    final, l_reason, l_message = hpa.limit_rate(
        current, stabilized, lo, hi, state.up_events, state.down_events, behavior, now
    )
    if final != stabilized:
        reason, message = l_reason, f"{l_message}: {final} instead of {stabilized}{sched}"
    elif stabilized != desired:
        reason, message = s_reason, f"{s_message}: {stabilized} instead of {desired}"
    elif final > current:
        reason = "PredictiveScaleUp" if driver == "forecast" else "ScaleUp"
        message = f"{current} → {final} by {driver}"
    elif final < current:
        reason, message = "ScaleDown", f"{current} → {final} by {driver}"
    else:
        reason, message = "NoChange", f"{current} is right by {driver}"
    return done(final, reason, f"{message} ({explain})", state, proposals=proposals,
                driver=driver)  # fmt: skip

"""Replay a load trace through a scaling policy and score it.

The model (the same one ``bench/scaling.py`` and the cost part's advice use):

- time advances in ticks of ``tick`` seconds (15, the HPA's sync period); demand is a
  per-minute rate (req/s), constant within its minute;
- an instance is billed from its launch and serves only after ``startup`` seconds;
  removing instances takes booting ones first, then the newest;
- a minute is **SLO-risk** when, at any tick of it, demand exceeds ``slo`` (0.9) × the
  capacity of the ready instances (``capacity`` req/s each at 100 %);
- the controller sees the load ``lag`` seconds late (the metrics pipeline), as CPU
  utilization of the ready instances, or as a forecast.

Use::

    from fastmango.scaler import simulator
    result = simulator.simulate(demand, simulator.hpa_controller(policy), capacity=12.5)
    result.replica_hours, result.risk_minutes, result.actions

A controller is any callable ``(tick_view) -> replicas``; :func:`static_controller`,
:func:`hpa_controller` (decide() with a policy, optional forecasts) are provided, and
:func:`oracle_replica_hours` gives the perfect-foresight lower bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fastmango.scaler import hpa
from fastmango.scaler.decide import Forecast, Observations, State, decide
from fastmango.scaler.policy import Policy


@dataclass(frozen=True)
class TickView:
    """What a controller sees at one tick."""

    now: float  # seconds since the start of the replay
    minute: int
    replicas: int
    ready: int
    launches: tuple[float, ...]  # launch times of the current instances
    observed: float  # demand (req/s) as seen ``lag`` seconds ago
    observed_ready: int  # ready instances at that time
    capacity: float  # req/s one instance serves at 100 %


Controller = Callable[[TickView], int]


@dataclass
class Result:
    replica_hours: float
    risk_minutes: int
    minutes: int
    actions: int
    replicas: list[float] = field(default_factory=list)  # mean instances per minute
    ready: list[int] = field(default_factory=list)  # fewest ready instances per minute

    @property
    def risk_pct(self) -> float:
        return 100.0 * self.risk_minutes / self.minutes if self.minutes else 0.0

    @property
    def actions_per_day(self) -> float:
        return self.actions / (self.minutes / 1440) if self.minutes else 0.0


def need(demand: float, capacity: float, slo: float = 0.9, minimum: int = 1) -> int:
    """Ready instances a minute needs to stay under the SLO line."""
    return max(minimum, math.ceil(demand / (slo * capacity) - 1e-9))


def simulate(
    demand: Sequence[float],
    controller: Controller,
    *,
    capacity: float,
    startup: float = 60.0,
    tick: float = 15.0,
    slo: float = 0.9,
    lag: float = 60.0,
    initial: int | None = None,
) -> Result:
    """Replay per-minute ``demand`` (req/s) through ``controller``; see the module doc."""
    per_min = round(60 / tick)
    first = initial if initial is not None else need(demand[0], capacity, slo)
    launches = [-startup] * first  # ready at t = 0
    lag_ticks = round(lag / tick)
    ready_hist: list[int] = []
    billed = 0.0
    risk = 0
    actions = 0
    rep_series: list[float] = []
    ready_series: list[int] = []
    for m, d in enumerate(demand):
        at_risk = False
        rsum = 0
        rmin = 1 << 30
        for k in range(per_min):
            t = (m * per_min + k) * tick
            ready = sum(1 for s in launches if s + startup <= t)
            ready_hist.append(ready)
            j = m * per_min + k - lag_ticks
            obs_min = max(j, 0) // per_min
            view = TickView(t, m, len(launches), ready, tuple(launches), demand[obs_min],
                            ready_hist[max(j, 0)], capacity)  # fmt: skip
            want = max(int(controller(view)), 0)
            if want > len(launches):
                launches.extend([t] * (want - len(launches)))
                actions += 1
            elif want < len(launches):
                launches.sort(key=lambda s: -s)  # newest (booting) first
                del launches[: len(launches) - want]
                actions += 1
            ready = sum(1 for s in launches if s + startup <= t)
            if d > slo * ready * capacity:
                at_risk = True
            billed += len(launches) * tick
            rsum += len(launches)
            rmin = min(rmin, ready)
        risk += at_risk
        rep_series.append(rsum / per_min)
        ready_series.append(rmin)
    return Result(billed / 3600, risk, len(demand), actions, rep_series, ready_series)


def static_controller(replicas: int) -> Controller:
    return lambda view: replicas


def hpa_controller(
    policy: Policy,
    forecasts: Sequence[tuple[float, float, float]] | None = None,
    *,
    history: float = 7 * 86400,
    errors: Sequence[float | None] | None = None,
) -> Controller:
    """A controller that runs :func:`decide` with ``policy`` on CPU utilization of the
    ready instances (and, with ``forecasts``, per-minute (low, peak, high) forecasts of
    the coming peak in req/s, sized at the policy's predictive utilization)."""
    state = [State()]
    targets = policy.effective_targets
    util = policy.predictive.utilization or (targets.cpu or 80.0) / 100

    def control(view: TickView) -> int:
        pods = []
        per_pod = (
            100.0 * view.observed / (view.observed_ready * view.capacity)
            if view.observed_ready
            else 0.0
        )
        for i, s in enumerate(view.launches):
            ready_at = s + policy.startup
            is_ready = ready_at <= view.now
            pods.append(hpa.Pod(
                name=str(i), phase="Running", ready=is_ready, started_at=s,
                ready_changed_at=ready_at if is_ready else s,
                metrics={"cpu": per_pod} if is_ready else {}, sampled_at=view.now,
            ))  # fmt: skip
        fc = None
        if forecasts is not None and view.minute < len(forecasts):
            low, peak, high = forecasts[view.minute]
            err = errors[view.minute] if errors is not None else None
            fc = Forecast(peak, policy.horizon(), view.capacity * util, history, low, high, err)
        obs = Observations(view.replicas, tuple(pods), forecast=fc)
        decision = decide(state[0], obs, policy, view.now)
        state[0] = decision.state
        return decision.replicas

    return control


def oracle_replica_hours(
    demand: Sequence[float],
    capacity: float,
    *,
    startup: float = 60.0,
    slo: float = 0.9,
    minimum: int = 1,
) -> float:
    """The least replica-hours with no SLO-risk minute, knowing the future: for each
    replica level k, the minutes needing ≥ k instances form runs; each run costs its
    length, a launch costs the start-up time, and a gap g between runs costs min(g, L)
    (keep it running, or stop and relaunch)."""
    needs = [need(d, capacity, slo, minimum) for d in demand]
    boot = startup / 60
    total = 0.0
    for k in range(1, max(needs, default=0) + 1):
        runs = 0.0
        last_end: int | None = None
        start_of_run: int | None = None
        for m, n in enumerate([*needs, 0]):
            if n >= k and start_of_run is None:
                start_of_run = m
                if last_end is None:
                    runs += boot if m > 0 or k > needs[0] else 0.0
                else:
                    runs += min(m - last_end, boot)
            elif n < k and start_of_run is not None:
                runs += m - start_of_run
                last_end, start_of_run = m, None
        total += runs
    return total / 60


@dataclass(frozen=True)
class Bound:
    """What a simple reference policy reaches on a trace: its ``margin`` over the load it
    is allowed to know, its SLO-risk minutes and its replica-hours (no start-up cost
    charged: an optimistic figure)."""

    margin: float
    risk_minutes: int
    replica_hours: float


CAUSAL_MARGINS = tuple(round(1 + 0.02 * i, 2) for i in range(201))  # ×1 … ×5
CLAIRVOYANT_MARGINS = tuple(round(1 + 0.01 * i, 2) for i in range(301))  # ×1 … ×4


def _margin_run(demand: Sequence[float], known: Sequence[float], capacity: float,
                margin: float, slo: float) -> Bound:  # fmt: skip
    risk, hours = _sized_run(demand, [k * margin for k in known], capacity, slo, 0.0)
    return Bound(margin, risk, hours)


def causal_margin_bound(
    demand: Sequence[float],
    capacity: float,
    *,
    risk_minutes: int,
    slo: float = 0.9,
    delay: int = 2,
    margins: Sequence[float] = CAUSAL_MARGINS,
) -> Bound | None:
    """The cheapest constant spare that keeps SLO-risk minutes ≤ ``risk_minutes`` for a
    policy that sizes minute m from the load of minute ``m - delay`` (in this model the
    instances serving minute m were asked for a minute earlier, on a load seen a minute
    late: delay 2) as ``need(margin × load)``. A step in the load that this spare does
    not absorb costs at least ``delay`` risk minutes to any policy that does not time it;
    the hours this spare costs tell whether spare capacity alone can buy the goal.
    None when no margin up to ×5 gets there."""
    known = [demand[max(m - delay, 0)] for m in range(len(demand))]
    for margin in margins:
        b = _margin_run(demand, known, capacity, margin, slo)
        if b.risk_minutes <= risk_minutes:
            return b
    return None


def clairvoyant_margin_bound(
    demand: Sequence[float],
    capacity: float,
    *,
    replica_hours: float,
    slo: float = 0.9,
    half_window: int = 2,
    margins: Sequence[float] = CLAIRVOYANT_MARGINS,
) -> Bound | None:
    """The fewest SLO-risk minutes within ``replica_hours`` for a policy that knows the
    future: it sizes each minute as ``need(margin × mean load of minutes m ± half_window)``
    (a perfect forecast of the level, not of each minute's noise). If even this cannot
    reach a risk target within a budget, no causal forecaster sized the same way can.
    None when no margin fits the budget."""
    known = local_means(demand, half_window)
    best: Bound | None = None
    for margin in margins:
        b = _margin_run(demand, known, capacity, margin, slo)
        if b.replica_hours > replica_hours:
            break
        if best is None or b.risk_minutes <= best.risk_minutes:
            best = b
    return best


# -- a variance-aware reachability bound -------------------------------------------------
#: how the noise scale s(μ) of the load around its local mean μ is known:
#: ``poisson`` √μ (counting noise; its constant goes into k), ``binned`` the empirical
#: std of load − μ among the minutes whose μ falls in the same level bin (equal-count
#: bins), ``local`` the std of the window itself (knows the coming minutes' spread too)
NOISE_SCALES = ("poisson", "binned", "local")
NOISE_KS = tuple(round(0.01 * i, 2) for i in range(801))  # k = 0 … 8


@dataclass(frozen=True)
class NoiseBound:
    """What sizing each minute as ``need(μ + k·s)`` reaches: μ the mean load of minutes
    m ± half_window (known in advance), s the noise scale of kind ``scale``; its SLO-risk
    minutes and replica-hours (with ``startup`` seconds charged per launch)."""

    scale: str
    k: float
    risk_minutes: int
    replica_hours: float
    margin: float = 1.0  # sizes need(margin·μ + k·s) (known_level_bound)


def local_means(demand: Sequence[float], half_window: int = 2) -> list[float]:
    """The mean load of minutes m − half_window … m + half_window (cut at the ends)."""
    n = len(demand)
    prefix = [0.0]
    for d in demand:
        prefix.append(prefix[-1] + d)
    out = []
    for m in range(n):
        lo, hi = max(0, m - half_window), min(n, m + half_window + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def noise_scales(
    demand: Sequence[float],
    levels: Sequence[float],
    scale: str,
    *,
    bins: int = 20,
    half_window: int = 2,
) -> list[float]:
    """Per minute, the noise scale s of the load around ``levels`` (see NOISE_SCALES)."""
    n = len(demand)
    if scale == "poisson":
        return [math.sqrt(max(mu, 0.0)) for mu in levels]
    if scale == "local":
        out = []
        for m in range(n):
            window = demand[max(0, m - half_window) : min(n, m + half_window + 1)]
            mu = sum(window) / len(window)
            out.append(math.sqrt(sum((d - mu) ** 2 for d in window) / len(window)))
        return out
    if scale != "binned":
        raise ValueError(f"noise scale {scale!r}: expected one of {', '.join(NOISE_SCALES)}")
    order = sorted(range(n), key=lambda i: levels[i])
    out = [0.0] * n
    for b in range(max(1, min(bins, n))):
        idx = order[b * n // bins : (b + 1) * n // bins]
        if not idx:
            continue
        resid = [demand[i] - levels[i] for i in idx]
        mean = sum(resid) / len(resid)
        std = math.sqrt(sum((r - mean) ** 2 for r in resid) / len(resid))
        for i in idx:
            out[i] = std
    return out


def _sized_run(demand: Sequence[float], sizes: Sequence[float], capacity: float, slo: float,
               startup: float) -> tuple[int, float]:  # fmt: skip
    risk = 0
    minutes = 0.0
    prev: int | None = None
    for d, s in zip(demand, sizes, strict=True):
        n = need(s, capacity, slo)
        minutes += n
        if prev is not None and n > prev:
            minutes += (n - prev) * startup / 60
        prev = n
        risk += d > slo * n * capacity
    return risk, minutes / 60


def noise_aware_bound(
    demand: Sequence[float],
    capacity: float,
    *,
    replica_hours: float,
    slo: float = 0.9,
    half_window: int = 2,
    scale: str = "binned",
    startup: float = 0.0,
    ks: Sequence[float] = NOISE_KS,
) -> NoiseBound | None:
    """The fewest SLO-risk minutes within ``replica_hours`` for a policy that knows the
    future mean load μ of minutes m ± half_window and sizes minute m as
    ``need(μ + k·s)``, s the noise scale of kind ``scale`` (see NOISE_SCALES), k swept
    over ``ks``: spare in proportion to the noise at that level, not to the level (a
    multiplicative margin wastes hours at high load and under-covers at low load, where
    relative noise is larger). ``startup`` seconds are charged per instance launched over
    the previous minute's count (0: an optimistic figure). Hours grow and risk falls
    with k, so the best is the largest k within the budget. None when k = ks[0] is over
    the budget already."""
    levels = local_means(demand, half_window)
    spread = noise_scales(demand, levels, scale, half_window=half_window)
    return _largest_k(demand, levels, spread, capacity, replica_hours, slo, startup, ks,
                      scale)  # fmt: skip


def _sizer(demand: Sequence[float], levels: Sequence[float], spread: Sequence[float],
           capacity: float, slo: float, startup: float, scale: str,
           margin: float = 1.0) -> Callable[[float], NoiseBound]:  # fmt: skip
    """k → what sizing each minute as ``need(margin·level + k·spread)`` reaches."""

    def at(k: float) -> NoiseBound:
        sizes = [margin * mu + k * s for mu, s in zip(levels, spread, strict=True)]
        risk, hours = _sized_run(demand, sizes, capacity, slo, startup)
        return NoiseBound(scale, k, risk, hours, margin)

    return at


def _largest_k(demand: Sequence[float], levels: Sequence[float], spread: Sequence[float],
               capacity: float, budget: float, slo: float, startup: float,
               ks: Sequence[float], scale: str,
               margin: float = 1.0) -> NoiseBound | None:  # fmt: skip
    at = _sizer(demand, levels, spread, capacity, slo, startup, scale, margin)
    lo, hi = 0, len(ks) - 1
    best = at(ks[0])
    if best.replica_hours > budget:
        return None
    while lo < hi:  # the largest index whose hours fit
        mid = (lo + hi + 1) // 2
        b = at(ks[mid])
        if b.replica_hours <= budget:
            lo, best = mid, b
        else:
            hi = mid - 1
    return best


KNOWN_LEVEL_MARGINS = tuple(round(1 + 0.02 * i, 2) for i in range(41))  # ×1 … ×1.8


def known_level_bound(
    demand: Sequence[float],
    levels: Sequence[float],
    capacity: float,
    *,
    replica_hours: float,
    slo: float = 0.9,
    startup: float = 0.0,
    margins: Sequence[float] = KNOWN_LEVEL_MARGINS,
    ks: Sequence[float] = NOISE_KS,
) -> NoiseBound | None:
    """The fewest SLO-risk minutes within ``replica_hours`` for a policy told ``levels``
    (e.g. a synthetic trace's exact calendar level times the burst multiplier as the load
    showed it two minutes earlier: all a forecaster could learn) that sizes each minute as
    ``need(margin·level + k·√level)``, both swept (spare for multiplicative jumps and for
    counting noise). None when nothing fits the budget."""
    spread = [math.sqrt(max(v, 0.0)) for v in levels]
    best: NoiseBound | None = None
    for margin in margins:
        b = _largest_k(demand, levels, spread, capacity, replica_hours, slo, startup, ks,
                       "poisson", margin)  # fmt: skip
        if b is None:
            break
        if best is None or b.risk_minutes < best.risk_minutes:
            best = b
    return best


def noise_aware_cost(
    demand: Sequence[float],
    capacity: float,
    *,
    risk_minutes: int,
    slo: float = 0.9,
    half_window: int = 2,
    scale: str = "binned",
    startup: float = 0.0,
    ks: Sequence[float] = NOISE_KS,
) -> NoiseBound | None:
    """The other side of :func:`noise_aware_bound`: the cheapest ``need(μ + k·s)`` sizing
    that keeps SLO-risk minutes ≤ ``risk_minutes`` (the smallest such k), i.e. the hours
    a goal on risk costs even knowing the coming mean load. None when k = ks[-1] misses."""
    levels = local_means(demand, half_window)
    spread = noise_scales(demand, levels, scale, half_window=half_window)
    at = _sizer(demand, levels, spread, capacity, slo, startup, scale)
    best = at(ks[-1])
    if best.risk_minutes > risk_minutes:
        return None
    lo, hi = 0, len(ks) - 1
    while lo < hi:  # the smallest index whose risk fits
        mid = (lo + hi) // 2
        b = at(ks[mid])
        if b.risk_minutes <= risk_minutes:
            hi, best = mid, b
        else:
            lo = mid + 1
    return best


def target_hours(demand: Sequence[float], capacity: float, utilization: float) -> float:
    """Replica-hours of ``ceil(load / (utilization × capacity))`` instances each minute
    (at least one), with perfect timing: what a reactive leg at that target spends
    before any lag, start-up or scale-down window."""
    return sum(need(d, capacity, utilization) for d in demand) / 60

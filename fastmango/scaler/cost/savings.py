"""Savings for ``fastmango billing --optimize``, each with the evidence it rests on.

* :func:`rightsize`: Kubecost's request right-sizing: recommended = p95 usage / target
  utilisation (0.7; 0.65 in production), floored at 10 millicores and 20 MiB, mapped to
  the cheapest size on the same platform that holds it.
* :func:`idle_schedule`: hours of the week when a non-production environment had no
  load in every week seen; a schedule (the scaler's syntax) that runs 0 instances then.
* :func:`predictive_vs_static`: the app's own demand replayed through the scaler's
  simulator, with static capacity for the peak against the scaler's rules with a
  seasonal forecast.
* :func:`cheapest_platform`: the cheapest size on each platform that fits the measured
  load, against what the environment costs now.

Pure: measurements, prices and the clock come in. Dollars are per month (730 hours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fastmango.scaler.cost.pricing import Catalogue, Size
from fastmango.scaler.cost.projection import HOUR, WEEK

MONTH_HOURS = 730.0
MIN_CPU = 0.01  # cores (Kubecost minRecCPUMillicores = 10)
MIN_MEM_GB = 20 / 1024  # 20 MiB
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PLATFORMS = ("fly", "railway", "render", "ecs", "cloudrun", "azure")


@dataclass
class Saving:
    kind: str  # rightsize | idle-schedule | predictive | platform
    env: str
    title: str
    dollars_per_month: float
    action: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "env": self.env, "title": self.title,
                "dollars_per_month": round(self.dollars_per_month, 2), "action": self.action,
                "evidence": self.evidence}  # fmt: skip


def quantile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated quantile (numpy's default); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def monthly(cat: Catalogue, platform: str, size: str) -> float | None:
    return cat.rate(platform, size).monthly(MONTH_HOURS * HOUR)


def fitting(cat: Catalogue, platform: str, need: Size) -> tuple[str, Size, float] | None:
    """The cheapest size on ``platform`` with at least ``need``: (name, shape, $/month)."""
    best: tuple[str, Size, float] | None = None
    for name, shape in cat.candidates(platform):
        if shape.vcpu + 1e-9 < need.vcpu or shape.memory_gb + 1e-9 < need.memory_gb:
            continue
        dollars = monthly(cat, platform, name)
        if dollars is None:
            continue
        if best is None or dollars < best[2]:
            best = (name, shape, dollars)
    return best


def recommended(cpu_p95: float, mem_p95_gb: float, target: float) -> Size:
    return Size(max(cpu_p95 / target, MIN_CPU), max(mem_p95_gb / target, MIN_MEM_GB))


def rightsize(
    cat: Catalogue,
    env: str,
    platform: str,
    size: str,
    cpu: Sequence[float],
    mem_gb: Sequence[float],
    replicas: float,
    target: float,
    window_hours: float,
) -> Saving | None:
    """A smaller (or cheaper) size when p95 usage / target fits one."""
    cpu_p95, mem_p95 = quantile(cpu, 0.95), quantile(mem_gb, 0.95)
    current = cat.size_of(platform, size)
    now_cost = monthly(cat, platform, size)
    if cpu_p95 is None or mem_p95 is None or current is None or now_cost is None:
        return None
    rec = recommended(cpu_p95, mem_p95, target)
    best = fitting(cat, platform, rec)
    if best is None or best[2] >= now_cost - 0.005:
        return None
    name, shape, cost = best
    per_instance = now_cost - cost
    return Saving(
        "rightsize", env,
        f"Right-size {env} from {size} to {name}",
        per_instance * replicas,
        f"set environments.{env}.size = \"{name}\" and redeploy",
        {
            "cpu_p95_cores": round(cpu_p95, 4), "memory_p95_gb": round(mem_p95, 4),
            "current": {"size": size, "vcpu": current.vcpu, "memory_gb": current.memory_gb,
                        "dollars_per_month": round(now_cost, 2)},
            "cpu_efficiency": round(cpu_p95 / current.vcpu, 3),
            "memory_efficiency": round(mem_p95 / current.memory_gb, 3),
            "target_utilization": target,
            "recommended_request": {"vcpu": round(rec.vcpu, 4),
                                    "memory_gb": round(rec.memory_gb, 4)},
            "recommended": {"size": name, "vcpu": shape.vcpu, "memory_gb": shape.memory_gb,
                            "dollars_per_month": round(cost, 2)},
            "replicas": round(replicas, 2), "samples": len(cpu), "window_hours": window_hours,
            "rule": "recommended = p95 / target utilisation (Kubecost request right-sizing)",
        },
    )  # fmt: skip


def idle_schedule(
    env: str,
    load: Sequence[tuple[float, float]],
    replicas: Sequence[tuple[float, float]],
    hourly_price: float,
    threshold: float,
    production: bool,
) -> Saving | None:
    """Switch a non-production environment off in the hours of the week it is idle in
    every week seen (at least one full week of hourly load is needed)."""
    if production or not load:
        return None
    span = load[-1][0] - load[0][0] + HOUR
    if span < WEEK:
        return None
    busy: dict[int, bool] = {}
    peak: dict[int, float] = {}
    for t, rps in load:
        slot = int((t % WEEK) // HOUR)
        busy[slot] = busy.get(slot, False) or rps > threshold
        peak[slot] = max(peak.get(slot, 0.0), rps)
    rep: dict[int, list[float]] = {}
    for t, r in replicas:
        rep.setdefault(int((t % WEEK) // HOUR), []).append(r)

    # the Unix epoch was a Thursday: slot 0 is Thu 00:00 UTC
    def day_hour(slot: int) -> tuple[int, int]:
        return (slot // 24 + 3) % 7, slot % 24

    spans: dict[int, tuple[int, int] | None] = {}
    for d in range(7):
        hours = [h for h in range(24) if busy.get(_slot(d, h), True)]
        spans[d] = (min(hours), max(hours) + 1) if hours else None
    idle_hours: list[int] = []
    for slot in range(168):
        d, h = day_hour(slot)
        sp = spans[d]
        if sp is None or not sp[0] <= h < sp[1]:
            idle_hours.append(slot)
    saved_instance_hours = sum(
        sum(rep.get(s, [0.0])) / max(len(rep.get(s, [])), 1) for s in idle_hours
    )
    if not idle_hours or saved_instance_hours <= 0:
        return None
    dollars = saved_instance_hours * hourly_price * MONTH_HOURS / 168
    schedule = schedule_text(spans)
    weeks = span / WEEK
    return Saving(
        "idle-schedule", env,
        f"Switch {env} off for {len(idle_hours)} idle hours a week",
        dollars,
        f"fastmango scale --env={env} --schedule '{schedule}'",
        {
            "idle_hours_per_week": len(idle_hours),
            "threshold_rps": threshold,
            "weeks_observed": round(weeks, 1),
            "peak_rps_in_idle_hours": round(max(peak.get(s, 0.0) for s in idle_hours), 4),
            "instance_hours_saved_per_week": round(saved_instance_hours, 2),
            "hourly_price": round(hourly_price, 5),
            "active_windows": {DAYS[d]: (f"{a:02d}:00-{b:02d}:00" if sp else None)
                               for d, sp in spans.items() for a, b in [sp or (0, 0)]},
            "schedule": schedule,
        },
    )  # fmt: skip


def _slot(day: int, hour: int) -> int:
    """Hour-of-week slot (from Thu 00:00 UTC, the epoch's weekday) of a Mon=0 day."""
    return ((day - 3) % 7) * 24 + hour


def schedule_text(spans: dict[int, tuple[int, int] | None], zone: str = "UTC") -> str:
    """Active spans per day → ``'Mon-Fri 08:00-20:00 UTC min=1; otherwise 0'``."""
    clauses = []
    d = 0
    while d < 7:
        sp = spans.get(d)
        if sp is None:
            d += 1
            continue
        e = d
        while e + 1 < 7 and spans.get(e + 1) == sp:
            e += 1
        days = DAYS[d] if d == e else f"{DAYS[d]}-{DAYS[e]}"
        clauses.append(f"{days} {sp[0]:02d}:00-{sp[1]:02d}:00 {zone} min=1")
        d = e + 1
    clauses.append("otherwise 0")
    return "; ".join(clauses)


def predictive_vs_static(
    env: str,
    demand: Sequence[float],
    capacity: float,
    hourly_price: float,
    actual_replica_hours: float | None,
    simulate: Callable[..., Any],
    static_controller: Callable[[int], Any],
    predictive_controller: Callable[[Sequence[tuple[float, float, float]]], Any],
    need: Callable[..., int],
    tick: float = 60.0,
) -> Saving | None:
    """Replay per-minute ``demand`` (req/s) through the scaler's simulator: the
    environment's current instances (else static capacity for the peak) against the
    scaler's rules with an hour-of-day seasonal forecast of the coming peak. The
    simulator's parts come in as arguments; ``tick`` is its control period."""
    if len(demand) < 120 or capacity <= 0 or max(demand) <= 0:
        return None
    minutes = len(demand)
    static_n = need(max(demand), capacity)
    static = simulate(demand, static_controller(static_n), capacity=capacity, tick=tick)
    forecasts = seasonal_peaks(demand)
    pred = simulate(demand, predictive_controller(forecasts), capacity=capacity, tick=tick)
    scale = MONTH_HOURS * 60 / minutes
    base, against = static.replica_hours, f"static capacity for the peak ({static_n})"
    if actual_replica_hours is not None:
        base, against = actual_replica_hours, "its current instances"
    dollars = (base - pred.replica_hours) * hourly_price * scale
    if dollars <= 0.005:
        return None
    return Saving(
        "predictive", env,
        f"Predictive scaling of {env} instead of {against}",
        dollars,
        f"fastmango scale --env={env} --min=1 --max={max(static_n * 2, 2)} --predictive",
        {
            "minutes_replayed": minutes,
            "capacity_rps_per_instance": round(capacity, 3),
            "peak_rps": round(max(demand), 3),
            "static": {"replicas": static_n, "replica_hours": round(static.replica_hours, 2),
                       "slo_risk_pct": round(static.risk_pct, 2)},
            "predictive": {"replica_hours": round(pred.replica_hours, 2),
                           "slo_risk_pct": round(pred.risk_pct, 2),
                           "actions_per_day": round(pred.actions_per_day, 1)},
            "actual_replica_hours": (None if actual_replica_hours is None
                                     else round(actual_replica_hours, 2)),
            "compared_with": against,
            "hourly_price": round(hourly_price, 5),
            "simulator": "fastmango.scaler.simulator (the scaler's decide() with a "
                         "seasonal hour-of-day peak forecast, fit in-sample)",
        },
    )  # fmt: skip


def seasonal_peaks(demand: Sequence[float], horizon: int = 3) -> list[tuple[float, float, float]]:
    """Per minute: (low, peak, high) of the coming ``horizon`` minutes as the same
    minutes of the day have averaged, hour-of-day (in-sample)."""
    by_hour: dict[int, list[float]] = {}
    for m, d in enumerate(demand):
        by_hour.setdefault((m // 60) % 24, []).append(d)
    hour_peak = {h: (quantile(v, 0.95) or 0.0) for h, v in by_hour.items()}
    out = []
    for m in range(len(demand)):
        ahead = [hour_peak[((m + k) // 60) % 24] for k in range(horizon + 1)]
        p = max(ahead)
        out.append((0.8 * p, p, 1.2 * p))
    return out


def cheapest_platform(
    cat: Catalogue,
    env: str,
    platform: str,
    current_monthly: float | None,
    cpu: Sequence[float],
    mem_gb: Sequence[float],
    replicas: float,
    target: float,
    egress_gb_month: float | None,
) -> Saving | None:
    """The platform whose cheapest fitting size (plus egress, where priced) costs least."""
    cpu_p95, mem_p95 = quantile(cpu, 0.95), quantile(mem_gb, 0.95)
    if cpu_p95 is None or mem_p95 is None or current_monthly is None:
        return None
    rec = recommended(cpu_p95, mem_p95, target)
    options: list[dict[str, Any]] = []
    for p in PLATFORMS:
        best = fitting(cat, p, rec)
        if best is None:
            continue
        egress_price = cat.unit(f"{p}/egress_gb")[0]
        egress = (None if egress_gb_month is None or egress_price is None
                  else egress_gb_month * egress_price)  # fmt: skip
        total = best[2] * replicas + (egress or 0.0)
        options.append({"platform": p, "size": best[0], "vcpu": best[1].vcpu,
                        "memory_gb": best[1].memory_gb,
                        "compute_dollars_per_month": round(best[2] * replicas, 2),
                        "egress_dollars_per_month": None if egress is None else round(egress, 2),
                        "dollars_per_month": round(total, 2)})  # fmt: skip
    if not options:
        return None
    options.sort(key=lambda o: o["dollars_per_month"])
    top = options[0]
    if top["platform"] == platform or top["dollars_per_month"] >= current_monthly - 0.005:
        return None
    return Saving(
        "platform", env,
        f"Move {env} from {platform} to {top['platform']} ({top['size']})",
        current_monthly - top["dollars_per_month"],
        f"set environments.{env}.platform = \"{top['platform']}\", "
        f"size = \"{top['size']}\" (weigh migration effort and features first)",
        {
            "cpu_p95_cores": round(cpu_p95, 4), "memory_p95_gb": round(mem_p95, 4),
            "target_utilization": target,
            "needed": {"vcpu": round(rec.vcpu, 4), "memory_gb": round(rec.memory_gb, 4)},
            "replicas": round(replicas, 2),
            "egress_gb_per_month": None if egress_gb_month is None else round(egress_gb_month, 2),
            "current": {"platform": platform, "dollars_per_month": round(current_monthly, 2)},
            "options": options,
            "note": "egress left out where a platform's price is unknown",
        },
    )  # fmt: skip

"""``--optimize``: gathers the measurements each saving rule needs from the store and runs
the rules of :mod:`fastmango.scaler.cost.savings`; says, per environment and rule, why a
rule found nothing (so an empty list is explained, not silent)."""

from __future__ import annotations

import math
from typing import Any

from fastmango.agent.cost import inputs
from fastmango.agent.cost.report import catalogue
from fastmango.agent.settings import Settings
from fastmango.agent.store import Matcher, Store
from fastmango.scaler.cost import savings as rules
from fastmango.scaler.cost.usage import HOUR, hourly_replicas, month_bounds

GIB = 2**30
SIMULATED = 3 * 86400.0  # the predictive replay covers the last 3 days (at most)


def compute_savings(
    settings: Settings, store: Store, now: float, bill_doc: dict[str, Any]
) -> dict[str, Any]:
    cat = catalogue(settings)
    cfg = settings.cost
    start = now - cfg.window
    window_hours = round(cfg.window / HOUR, 1)
    own = inputs.own_environment(settings)
    usage = inputs.instance_usage(store, start, now) if own else None
    found: list[rules.Saving] = []
    skipped: list[dict[str, str]] = []
    m0, m1 = month_bounds(now)
    rows = {r["env"]: r for r in bill_doc["environments"]}

    def skip(env: str, kind: str, why: str) -> None:
        skipped.append({"env": env, "kind": kind, "reason": why})

    for env in inputs.env_inputs(settings, store, now):
        row = rows.get(env.name, {})
        if not env.changes:
            skip(env.name, "all", "no replicas events: usage unknown")
            continue
        size = env.changes[-1].size or env.size
        platform = env.changes[-1].platform or env.platform
        rate = cat.rate(platform, size, env.billing)
        month_cost = rate.monthly(rules.MONTH_HOURS * HOUR)
        if month_cost is None:
            skip(env.name, "all", rate.unknown or "no price")
            continue
        hourly_price = month_cost / rules.MONTH_HOURS
        reps = hourly_replicas(list(env.changes), start, now)
        avg_replicas = sum(r for _, r in reps) / len(reps) if reps else 0.0
        target = cfg.production_target_utilization if env.production else cfg.target_utilization
        # rightsizing and platform: this instance's CPU and memory
        if env.name == own and usage and usage["cpu"] and usage["memory"]:
            cpu = [v for _, v in usage["cpu"]]
            mem = [v / GIB for _, v in usage["memory"]]
            s = rules.rightsize(cat, env.name, platform, size, cpu, mem, avg_replicas, target,
                                window_hours)  # fmt: skip
            if s:
                s.evidence.update(
                    cpu_series=usage["cpu_source"], memory_series=usage["memory_source"]
                )
                found.append(s)
            else:
                skip(env.name, "rightsize", "p95 / target already needs the current size "
                     "(or no smaller size on the platform)")  # fmt: skip
            egress = _egress_month(row)
            s = rules.cheapest_platform(cat, env.name, platform, month_cost * avg_replicas, cpu,
                                        mem, avg_replicas, target, egress)  # fmt: skip
            if s:
                found.append(s)
            else:
                skip(env.name, "platform", f"{platform} is already the cheapest that fits")
        else:
            why = (
                "CPU and memory are measured only for the environment this agent runs in "
                "(cost.environment)"
                if env.name != own
                else "no CPU or memory series yet"
            )
            skip(env.name, "rightsize", why)
            skip(env.name, "platform", why)
        # idle hours and predictive: the environment's load
        load = inputs.load_history(settings, store, env.name, start, now)
        s = rules.idle_schedule(env.name, load, reps, hourly_price, cfg.idle_rps, env.production)
        if s:
            found.append(s)
        else:
            why = (
                "production"
                if env.production
                else "under a week of load history, or no hour of the week idle in every week"
            )
            skip(env.name, "idle-schedule", why)
        s = _predictive(settings, store, env.name, own, start, now, load, reps, usage,
                        hourly_price, size, platform, cat)  # fmt: skip
        if s:
            found.append(s)
        else:
            skip(env.name, "predictive", "not enough load history, or no saving over "
                 "the current instances")  # fmt: skip
    found.sort(key=lambda s: -s.dollars_per_month)
    best: dict[str, float] = {}
    for s in found:
        best[s.env] = max(best.get(s.env, 0.0), s.dollars_per_month)
    return {
        "generated_at": now,
        "window_hours": window_hours,
        "month_start": m0,
        "month_end": m1,
        "savings": [s.as_dict() for s in found],
        # one environment's savings overlap (a smaller size and fewer instances both cut
        # the same bill): the total takes the largest per environment
        "total_dollars_per_month": round(sum(best.values()), 2),
        "total_rule": "the largest saving of each environment, summed (savings of one "
        "environment overlap)",
        "skipped": skipped,
    }


def _egress_month(row: dict[str, Any]) -> float | None:
    for line in row.get("lines", []):
        if line["item"] == "egress" and line["unknown"] is None:
            return float(line["quantity_projected"])
    return None


def _predictive(
    settings: Settings, store: Store, env: str, own: str | None, start: float, now: float,
    load: list[tuple[float, float]], reps: list[tuple[float, float]], usage: Any,
    hourly_price: float, size: str, platform: str, cat: Any,
) -> rules.Saving | None:  # fmt: skip
    try:
        from fastmango.scaler import simulator
        from fastmango.scaler.policy import Policy, PolicyError, Predictive
    except ImportError:  # the scaler part is not there
        return None
    start = max(start, now - SIMULATED)
    load = [(t, v) for t, v in load if t >= start]
    reps = [(t, r) for t, r in reps if t >= start]
    per_instance: list[tuple[float, float]] = []
    scaler_load = inputs.minute_values(
        store, inputs.SCALER_LOAD, [Matcher("env", "=", env)], start, now, False
    )
    if scaler_load:  # the whole app's load as the scaler saw it
        demand = [v for _, v in scaler_load]
    elif env == own:  # this instance's requests × the instances then (even balancing)
        per_instance = inputs.minute_values(
            store, "http_requests_per_second", [], start, now, False
        )
        rep_at = dict(reps)
        demand = [v * rep_at.get(t // HOUR * HOUR, 1.0) for t, v in per_instance]
    else:
        demand = [rps for _, rps in load for _ in range(60)]
    if len(demand) < 120:
        return None
    capacity = _capacity(env == own, per_instance, usage, load, reps,
                         cat.size_of(platform, size))  # fmt: skip
    if capacity is None:
        return None
    static_n = simulator.need(max(demand), capacity)
    stored = inputs.scaling_policy(store, env)
    base = Policy(min=1, max=max(2 * static_n, 2))
    if stored is not None:
        try:
            base = Policy.from_dict(stored)
        except PolicyError:
            stored = None
    policy = base.with_(predictive=Predictive(enabled=True, min_history=0.0))
    actual = sum(r for _, r in reps) * (len(demand) / 60) / len(reps) if reps else None
    saving = rules.predictive_vs_static(
        env,
        demand,
        capacity,
        hourly_price,
        actual,
        simulator.simulate,
        simulator.static_controller,
        lambda fc: simulator.hpa_controller(policy, fc, history=len(demand) * 60.0),
        simulator.need,
    )
    if saving is not None:
        saving.evidence["policy"] = (
            "the environment's scaling policy, predictive on" if stored is not None
            else f"min 1, max {policy.max}, CPU target {policy.effective_targets.cpu:g} %"
        )  # fmt: skip
        saving.action = (
            f"fastmango scale --env={env} --predictive" if stored is not None
            else f"fastmango scale --env={env} --min=1 --max={policy.max} --predictive"
        )  # fmt: skip
    return saving


def _capacity(
    own: bool, demand_pts: list[tuple[float, float]], usage: Any,
    load: list[tuple[float, float]], reps: list[tuple[float, float]], shape: Any,
) -> float | None:  # fmt: skip
    """Requests per second one instance serves at 100 % CPU: measured where this agent
    sees both CPU and requests, else the busiest hour's requests per instance at 80 %."""
    if own and usage and usage["cpu"] and shape is not None:
        cpu = dict(usage["cpu"])
        ratios = [rps / (cpu[t] / shape.vcpu) for t, rps in demand_pts
                  if t in cpu and rps > 0 and cpu[t] > 0.05 * shape.vcpu]  # fmt: skip
        if len(ratios) >= 30:
            return rules.quantile(ratios, 0.5)
    rep = dict(reps)
    per = [rps / rep[t] for t, rps in load if rep.get(t)]
    if not per or max(per) <= 0:
        return None
    return max(per) / 0.8 if math.isfinite(max(per)) else None

"""The --optimize rules on worked examples: Kubecost's right-sizing, an idle schedule the
scaler accepts, predictive against static capacity in the scaler's simulator, and the
cheapest platform that fits."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from fastmango.scaler import simulator
from fastmango.scaler.cost import savings
from fastmango.scaler.cost.pricing import Catalogue
from fastmango.scaler.policy import Policy, Predictive
from fastmango.scaler.schedule import parse as parse_schedule

HOUR = 3600.0
DAY = 86400.0
MON = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday


@pytest.fixture
def cat() -> Catalogue:
    return Catalogue.load()


@pytest.mark.parametrize(
    ("p95", "target", "want"),
    [
        (0.100, 0.8, 0.125),  # Kubecost's example: 100m at 0.8 → 125m
        (0.100, 0.7, 0.142857),
        (0.001, 0.7, 0.01),  # floor: 10 millicores
    ],
)
def test_recommended_request(p95: float, target: float, want: float) -> None:
    assert savings.recommended(p95, 1.0, target).vcpu == pytest.approx(want, rel=1e-4)
    assert savings.recommended(p95, 0.0, target).memory_gb == pytest.approx(20 / 1024)


def test_rightsize_to_the_cheapest_size_that_holds_p95_over_target(cat: Catalogue) -> None:
    # p95 0.2 cores, 0.3 GB on Render standard (1 CPU, 2 GB, $25) at 0.7 → needs 0.286 CPU,
    # 0.429 GB → starter (0.5 CPU, 0.5 GB, $7): $18 per instance × 3
    cpu = [0.1] * 90 + [0.2] * 10
    mem = [0.25] * 90 + [0.3] * 10
    s = savings.rightsize(cat, "production", "render", "standard", cpu, mem, 3.0, 0.7, 168)
    assert s is not None
    assert s.evidence["recommended"]["size"] == "starter"
    assert s.dollars_per_month == pytest.approx(3 * (25 - 7) * 730 / 730, abs=0.01)
    assert s.evidence["cpu_p95_cores"] == pytest.approx(0.2, abs=0.011)
    assert s.evidence["current"]["dollars_per_month"] == pytest.approx(25.0)
    # already tight: no saving
    busy = [0.9] * 100
    assert savings.rightsize(cat, "p", "render", "standard", busy, [1.2] * 100, 1, 0.7, 168) is None
    # Fly: 1 GB preset holding 0.2 GB → 512 MB preset ($5.70 → $3.19 per 30 days)
    s = savings.rightsize(cat, "s", "fly", "shared-cpu-1x-1gb", [0.05] * 50, [0.2] * 50, 1, 0.7,
                          168)  # fmt: skip
    assert s is not None and s.evidence["recommended"]["size"] == "shared-cpu-1x-512mb"
    assert s.dollars_per_month == pytest.approx((5.70 - 3.19) * 730 / 720, abs=0.01)


def office_load(weeks: int = 2) -> list[tuple[float, float]]:
    out = []
    for h in range(weeks * 168):
        t = MON + h * HOUR
        d = datetime.fromtimestamp(t, UTC)
        out.append((t, 5.0 if d.weekday() < 5 and 8 <= d.hour < 20 else 0.0))
    return out


def test_idle_schedule_switches_off_nights_and_weekends(cat: Catalogue) -> None:
    load = office_load()
    reps = [(t, 2.0) for t, _ in load]
    price = 5.70 / 720
    s = savings.idle_schedule("staging", load, reps, price, 0.01, production=False)
    assert s is not None
    assert s.evidence["idle_hours_per_week"] == 168 - 60
    assert s.evidence["schedule"] == "Mon-Fri 08:00-20:00 UTC min=1; otherwise 0"
    assert s.dollars_per_month == pytest.approx(108 * 2 * price * 730 / 168)
    sched = parse_schedule(s.evidence["schedule"])  # the scaler accepts it, and it means it
    bounds, _ = sched.bounds_at(MON + 9 * HOUR)
    assert bounds is not None and bounds.min == 1
    bounds, _ = sched.bounds_at(MON + 5 * DAY + 12 * HOUR)  # Saturday noon
    assert bounds is not None and bounds.max == 0
    assert savings.idle_schedule("prod", load, reps, price, 0.01, production=True) is None
    assert savings.idle_schedule("s", load[:100], reps, price, 0.01, production=False) is None


def test_one_busy_weekend_hour_keeps_that_day_on() -> None:
    load = office_load()
    sat_noon = MON + 5 * DAY + 12 * HOUR
    load = [(t, 3.0 if t == sat_noon else v) for t, v in load]
    s = savings.idle_schedule("s", load, [(t, 1.0) for t, _ in load], 0.01, 0.01, False)
    assert s is not None
    assert "Sat 12:00-13:00 UTC min=1" in s.evidence["schedule"]


def daily_demand(days: int = 2, peak: float = 100.0) -> list[float]:
    return [peak * (0.55 + 0.45 * math.sin(2 * math.pi * m / 1440)) for m in range(days * 1440)]


def test_predictive_against_static_in_the_scalers_simulator() -> None:
    demand = daily_demand()
    policy = Policy(min=1, max=20, predictive=Predictive(enabled=True, min_history=0.0))
    s = savings.predictive_vs_static(
        "production", demand, 10.0, 0.05, None, simulator.simulate,
        simulator.static_controller,
        lambda fc: simulator.hpa_controller(policy, fc, history=len(demand) * 60.0),
        simulator.need,
    )  # fmt: skip
    assert s is not None
    ev = s.evidence
    assert ev["static"]["replicas"] == simulator.need(max(demand), 10.0) == 12
    assert ev["static"]["replica_hours"] == pytest.approx(12 * 48, rel=0.01)
    assert ev["predictive"]["replica_hours"] < 0.85 * ev["static"]["replica_hours"]
    saved_hours = ev["static"]["replica_hours"] - ev["predictive"]["replica_hours"]
    assert s.dollars_per_month == pytest.approx(saved_hours * 0.05 * 730 / 48, rel=0.01)
    assert ev["predictive"]["slo_risk_pct"] < 5.0


def test_cheapest_platform_that_fits(cat: Catalogue) -> None:
    cpu, mem = [0.2] * 100, [0.3] * 100
    s = savings.cheapest_platform(cat, "p", "render", 75.0, cpu, mem, 3.0, 0.7, 100.0)
    assert s is not None
    options = {o["platform"]: o for o in s.evidence["options"]}
    assert options["render"]["size"] == "starter"
    assert options["render"]["dollars_per_month"] == pytest.approx(21.0)  # egress unknown
    assert options["railway"]["egress_dollars_per_month"] == pytest.approx(5.0)  # 100 GB × $0.05
    best = s.evidence["options"][0]
    assert s.dollars_per_month == pytest.approx(75.0 - best["dollars_per_month"])
    assert best["dollars_per_month"] == min(o["dollars_per_month"] for o in options.values())


def test_quantile_matches_numpy() -> None:
    import numpy as np

    vals = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    assert savings.quantile(vals, 0.95) == pytest.approx(float(np.quantile(vals, 0.95)))
    assert savings.quantile([], 0.95) is None

"""The forecaster (estimator contract, export to plain Python), its features, the
simulator and its oracle, and a smoke run of bench/scaling.py on a synthetic trace."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fastmango.scaler import features, simulator
from fastmango.scaler.compiled import Compiled
from fastmango.scaler.policy import Policy, Predictive, Targets

START = 1_700_000_000.0 // 86400 * 86400  # a midnight, UTC


def synthetic(days: float, seed: int = 1, base: float = 50.0) -> list[float]:
    """A daily cycle with weekday/weekend levels and Poisson-like noise, per minute."""
    rnd = random.Random(seed)
    out = []
    for i in range(int(days * 1440)):
        tod = (i % 1440) / 1440
        level = base * (1.2 + math.sin(2 * math.pi * (tod - 0.3)))
        if (i // 1440) % 7 >= 5:
            level *= 0.6
        out.append(max(0.0, level + rnd.gauss(0, math.sqrt(level + 1))))
    return out


def test_forward_peaks() -> None:
    assert features.forward_peaks([1, 5, 2, 3, 0], 2)[:3] == [5, 3, 3]
    assert math.isnan(features.forward_peaks([1, 5, 2, 3, 0], 2)[3])


def test_rows_match_one_by_one() -> None:
    vals = synthetic(2)
    many, bases = features.rows(vals, START, 3, [100, 1500, 2000])
    for k, i in enumerate([100, 1500, 2000]):
        one, b = features.rows(vals, START, 3, [i])
        assert one[0] == many[k] and b[0] == bases[k]
    assert len(many[0]) == len(features.NAMES)


def test_resample_minutes_holds_rates() -> None:
    start, vals = features.resample_minutes([(600.0, 2.0), (900.0, 4.0), (960.0, 1.0)])
    assert start == 600.0
    assert vals == [2.0] * 5 + [4.0, 1.0]


@pytest.fixture(scope="module")
def fitted() -> tuple[object, list[list[float]], list[float], list[float]]:
    from fastmango.scaler.forecast import PeakForecaster

    vals = synthetic(5)
    x, y, _ = features.dataset(vals[: 4 * 1440], START, 3, every=3)
    model = PeakForecaster(quantile=0.9, n_estimators=30).fit(x, y)
    idx = list(range(4 * 1440, 5 * 1440 - 3))
    rows, bases = features.rows(vals, START, 3, idx)
    actual = [features.forward_peaks(vals, 3)[i] for i in idx]
    return model, rows, bases, actual


def test_estimator_contract(fitted: tuple[object, ...]) -> None:
    from sklearn.base import clone

    from fastmango.scaler.forecast import PeakForecaster

    est = PeakForecaster(quantile=0.8, n_estimators=5)
    assert est.get_params()["quantile"] == 0.8
    assert not hasattr(est, "model_")  # __init__ only stores parameters
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(ValueError, match="at least 10 rows"):
        est.fit([[1.0]], [1.0])


def test_forecast_is_calibrated_on_unseen_data(fitted: tuple[object, ...]) -> None:
    model, rows, bases, actual = fitted
    med, q = model.predict_band(rows)  # type: ignore[attr-defined]
    peaks = [features.to_load(float(p), b) for p, b in zip(q, bases, strict=True)]
    covered = sum(p >= a for p, a in zip(peaks, actual, strict=True)) / len(actual)
    assert 0.75 <= covered <= 0.98  # a 0.9 quantile covers about 90 % of the peaks
    medians = [features.to_load(float(m), b) for m, b in zip(med, bases, strict=True)]
    wape = sum(abs(m - a) for m, a in zip(medians, actual, strict=True)) / sum(actual)
    assert wape < 0.3


def test_export_matches_sklearn(fitted: tuple[object, ...]) -> None:
    model, rows, _, _ = fitted
    compiled = Compiled(json.loads(json.dumps(model.export())))  # type: ignore[attr-defined]
    med, q = model.predict_band(rows[:200])  # type: ignore[attr-defined]
    for row, m, p in zip(rows[:200], med, q, strict=True):
        cm, cq = compiled.predict_row(row)
        assert cm == pytest.approx(float(m), abs=1e-6)
        assert cq == pytest.approx(float(p), abs=1e-6)
    with pytest.raises(ValueError, match="features"):
        compiled.predict_row([1.0])


# -- simulator --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("needs", "startup", "expected_minutes"),
    [
        ([1, 1, 1], 60, 3),  # one replica all along, ready from the start
        ([1, 2, 1], 60, 3 + 1 + 1),  # a second one for a minute, launched a minute early
        ([1, 2, 1, 1, 2], 60, 5 + (1 + 1) + (1 + 1)),  # gap of 2 min > L: stop and relaunch
        ([1, 2, 1, 2], 120, 4 + (2 + 1 + 1 + 1)),  # gap of 1 min < L: keep it running
        ([2, 2, 0, 0, 0], 60, 2 + 2 + 3),  # minimum 1 during zero demand
    ],
)
def test_oracle(needs: list[int], startup: float, expected_minutes: float) -> None:
    demand = [n * 0.9 * 10 for n in needs]  # exactly n instances of 10 req/s at 90 %
    got = simulator.oracle_replica_hours(demand, 10, startup=startup)
    assert got == pytest.approx(expected_minutes / 60)


def test_static_and_risk() -> None:
    demand = [9.0] * 10 + [27.0] * 5
    r = simulator.simulate(demand, simulator.static_controller(1), capacity=10)
    assert r.risk_minutes == 5
    assert r.replica_hours == pytest.approx(15 / 60)
    assert r.actions == 0
    r = simulator.simulate(demand, simulator.static_controller(3), capacity=10, initial=3)
    assert (r.risk_minutes, r.replica_hours) == (0, pytest.approx(45 / 60))


def test_new_instances_serve_after_startup() -> None:
    demand = [5.0] * 2 + [25.0] * 4
    r = simulator.simulate(demand, simulator.static_controller(3), capacity=10, initial=1,
                           startup=60)  # fmt: skip
    # launched at t=0, ready at t=60: minute 0 is fine (5 < 9), the rest are covered
    assert r.risk_minutes == 0
    r = simulator.simulate(demand, simulator.static_controller(3), capacity=10, initial=1,
                           startup=180)  # fmt: skip
    assert r.risk_minutes == 1  # minute 2 (t=120..180) has only one ready instance
    assert r.actions == 1


def test_hpa_controller_tracks_load() -> None:
    demand = [30.0] * 20 + [90.0] * 20 + [30.0] * 20
    pol = Policy(min=1, max=30, targets=Targets(cpu=70), startup=60)
    r = simulator.simulate(demand, simulator.hpa_controller(pol), capacity=10)
    assert 0 < r.risk_minutes <= 4  # the step up is seen 60 s late and needs 60 s to boot
    assert r.replicas[35] >= 13  # ceil(90 / 7)
    assert r.replicas[-1] < r.replicas[39]  # and comes back down after the window


def test_forecast_controller_raises_ahead() -> None:
    demand = [30.0] * 20 + [90.0] * 20
    peaks = [(d, max(demand[m : m + 3]), max(demand[m : m + 3])) for m, d in enumerate(demand)]
    pol = Policy(min=1, max=30, targets=Targets(cpu=70), startup=60,
                 predictive=Predictive(enabled=True, utilization=0.9))  # fmt: skip
    r = simulator.simulate(demand, simulator.hpa_controller(pol, peaks), capacity=10)
    assert r.risk_minutes == 0


@pytest.mark.parametrize(
    ("demand", "risk_target", "margin", "risk", "minutes"),
    [
        # flat load of 1.8 instances' worth: no spare needed, 2 instances a minute
        ([18.0] * 6, 0, 1.0, 0, 12),
        # a step to 3.6 seen 2 min late: ×1 leaves 2 risk minutes (minutes 2 and 3)
        ([18.0] * 2 + [36.0] * 4, 2, 1.0, 2, 2 * 2 + 2 * 2 + 2 * 4),
        # to allow none, the spare must absorb the step: 4 instances from 1.8's load
        # needs ×1.52 (the first step of the grid above ×1.5), then 7 from 3.6's
        ([18.0] * 2 + [36.0] * 4, 0, 1.52, 0, 4 * 4 + 7 * 2),
    ],
)
def test_causal_margin_bound(demand: list[float], risk_target: int, margin: float, risk: int,
                             minutes: int) -> None:  # fmt: skip
    b = simulator.causal_margin_bound(demand, 10.0, risk_minutes=risk_target)
    assert b is not None
    assert (b.margin, b.risk_minutes) == (pytest.approx(margin), risk)
    assert b.replica_hours == pytest.approx(minutes / 60)


def test_causal_margin_bound_gives_up() -> None:
    # a 20× step cannot be absorbed by any spare up to ×5
    assert simulator.causal_margin_bound([9.0] * 3 + [180.0] * 3, 10.0, risk_minutes=0) is None


def test_clairvoyant_margin_bound() -> None:
    # a one-minute spike inside flat load: knowing the 5-minute mean does not reveal it
    # (1 instance a minute, 2 around the spike where the mean is 12.6: 16 minutes)
    demand = [9.0] * 5 + [27.0] + [9.0] * 5
    b = simulator.clairvoyant_margin_bound(demand, 10.0, replica_hours=16 / 60, half_window=2)
    assert b is not None and (b.margin, b.risk_minutes) == (1.0, 1)
    # ×1.43 buys 3 around the spike (and 2 elsewhere): 27 minutes, no risk
    b = simulator.clairvoyant_margin_bound(demand, 10.0, replica_hours=30 / 60, half_window=2)
    assert b is not None and b.risk_minutes == 0
    assert b.replica_hours == pytest.approx(27 / 60)
    assert simulator.clairvoyant_margin_bound(demand, 10.0, replica_hours=1 / 60) is None


# -- the variance-aware bound ---------------------------------------------------------------
SPIKE = [9.0, 9.0, 27.0, 9.0, 9.0]  # instances of 9 req/s at the SLO line: 1, 1, 3, 1, 1


def test_local_means_and_noise_scales() -> None:
    assert simulator.local_means([1.0, 2.0, 3.0, 4.0, 5.0], 1) == [1.5, 2.0, 3.0, 4.0, 4.5]
    levels = simulator.local_means(SPIKE, 1)
    assert levels == [9.0, 15.0, 15.0, 15.0, 9.0]
    assert simulator.noise_scales(SPIKE, levels, "poisson") == pytest.approx(
        [3.0, 15**0.5, 15**0.5, 15**0.5, 3.0]
    )
    # the window's own spread: 0 where it holds only 9s, √72 where it holds the spike
    assert simulator.noise_scales(SPIKE, levels, "local", half_window=1) == pytest.approx(
        [0.0, 72**0.5, 72**0.5, 72**0.5, 0.0]
    )
    # residual std per level bin (equal-count bins): ±1 around 2, ±2 around 12
    binned = simulator.noise_scales([1.0, 3.0, 10.0, 14.0], [2.0, 2.0, 12.0, 12.0], "binned",
                                    bins=2)  # fmt: skip
    assert binned == pytest.approx([1.0, 1.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="expected one of poisson, binned, local"):
        simulator.noise_scales(SPIKE, levels, "gauss")


@pytest.mark.parametrize(
    ("budget", "startup", "k", "risk", "minutes"),
    [
        # μ = 15 around the spike: 15 + k√15 needs 3 instances from k = 0.78; k = 0.77
        # is the most that fits 10 minutes (2 a minute) and leaves the spike at risk
        (10, 0.0, 0.77, 1, 10),
        # 13 minutes buy 3 around the spike and 2 elsewhere, up to k = 3.0 (9 + 3·3 = 18
        # still needs 2); none at risk
        (13, 0.0, 3.0, 0, 13),
        # launches charged 60 s each: k = 0 (1, 2, 2, 2, 1) is 8 minutes + 1 launch
        (9, 60.0, 0.0, 1, 9),
    ],
)
def test_noise_aware_bound(budget: int, startup: float, k: float, risk: int,
                           minutes: int) -> None:  # fmt: skip
    b = simulator.noise_aware_bound(SPIKE, 10.0, replica_hours=budget / 60, half_window=1,
                                    scale="poisson", startup=startup)  # fmt: skip
    assert b is not None
    assert (b.k, b.risk_minutes) == (pytest.approx(k), risk)
    assert b.replica_hours == pytest.approx(minutes / 60)
    # under k = 0's cost there is nothing to size
    assert simulator.noise_aware_bound(SPIKE, 10.0, replica_hours=7 / 60, half_window=1) is None


def test_noise_aware_cost() -> None:
    # no risk minute costs k = 0.78 (13 minutes); one allowed costs nothing over k = 0
    c = simulator.noise_aware_cost(SPIKE, 10.0, risk_minutes=0, half_window=1, scale="poisson")
    assert c is not None and (c.k, c.risk_minutes) == (pytest.approx(0.78), 0)
    assert c.replica_hours == pytest.approx(13 / 60)
    c = simulator.noise_aware_cost(SPIKE, 10.0, risk_minutes=1, half_window=1, scale="poisson")
    assert c is not None and (c.k, c.replica_hours) == (0.0, pytest.approx(8 / 60))
    # a 20× spike in a flat minute is beyond any k ≤ 8 of its window's noise
    spike = [9.0] * 5 + [2000.0] + [9.0] * 5
    assert simulator.noise_aware_cost(spike, 10.0, risk_minutes=0, scale="binned") is None


def test_noise_aware_beats_a_margin_where_noise_differs_by_level() -> None:
    # a noisy low level (±50 %) and a quiet high one (±2 %): a multiplicative margin that
    # covers the low level's noise wastes instances at the high level
    low, high = [6.0, 12.0, 9.0, 4.5, 13.5] * 12, [89.0, 91.0, 90.0, 92.0, 88.0] * 12
    demand = low + high + low + high
    m = simulator.clairvoyant_margin_bound(demand, 10.0, replica_hours=27.0)
    v = simulator.noise_aware_bound(demand, 10.0, replica_hours=27.0, scale="binned")
    assert m is not None and v is not None
    assert (m.risk_minutes, v.risk_minutes) == (7, 0)
    assert v.replica_hours <= 27.0


@pytest.mark.parametrize(
    ("levels", "budget", "risk", "minutes"),
    [
        # told a flat 9 (blind to the spike): any spare up to 2 instances leaves it at risk
        ([9.0] * 5, 10, 1, 10),
        # 3 instances a minute cover it (×1.8 + k·√9 ≥ 18.01): no risk, 15 minutes
        ([9.0] * 5, 15, 0, 15),
        # told the spike: 1, 1, 3, 1, 1 instances, no spare needed
        (SPIKE, 7, 0, 7),
    ],
)
def test_known_level_bound(levels: list[float], budget: int, risk: int, minutes: int) -> None:
    b = simulator.known_level_bound(SPIKE, levels, 10.0, replica_hours=budget / 60)
    assert b is not None and b.risk_minutes == risk
    assert b.replica_hours == pytest.approx(minutes / 60)
    assert simulator.known_level_bound(SPIKE, levels, 10.0, replica_hours=4 / 60) is None


def test_target_hours() -> None:
    # 9 req/s is one instance at 90 %, 9.1 is two; an idle minute still has one
    assert simulator.target_hours([9.0, 9.1, 0.0], 10.0, 0.9) == pytest.approx(4 / 60)
    assert simulator.target_hours([9.0, 9.1, 0.0], 10.0, 0.7) == pytest.approx(5 / 60)


def test_bench_smoke(tmp_path: Path) -> None:
    trace = tmp_path / "synthetic.csv"
    vals = synthetic(3, seed=7, base=20.0)
    with trace.open("w") as fh:
        fh.write("timestamp,value\n")
        for i, v in enumerate(vals):
            fh.write(f"{simulator_ts(START + 60 * i)},{round(v * 60)}\n")
    out = subprocess.run(
        [sys.executable, "bench/scaling.py", str(trace), "--json", "--no-sweep",
         "--train-frac", "0.67", "--png-dir", str(tmp_path), "--jobs", "1",
         "--estimators", "20"],
        capture_output=True, text=True, timeout=120, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    data = json.loads(out.stdout)
    res = data["results"][0]
    assert set(res["policies"]) == {"static max", "HPA 70%", "fastmango", "oracle"}
    assert set(res["bounds"]) >= {"risk_target_minutes", "causal_margin",
                                  "clairvoyant_risk_minutes_at_1.25_oracle", "budget_hours",
                                  "noise_aware", "risk_goal_in_budget", "hpa70_window_hours",
                                  "target70_rounding_hours"}  # fmt: skip
    b = res["bounds"]
    hpa70 = res["policies"]["HPA 70%"]["replica_hours"]
    oracle = res["policies"]["oracle"]["replica_hours"]
    assert b["budget_hours"] == pytest.approx(min(hpa70, 1.25 * oracle))
    for scale in ("poisson", "binned", "local"):
        row = b["noise_aware"][scale]
        if row["replica_hours"] is not None:
            assert row["replica_hours"] <= b["budget_hours"]
        if row["risk_minutes_boot"] is not None:  # charging launches never helps
            assert row["risk_minutes_boot"] >= row["risk_minutes"]
    assert b["risk_goal_in_budget"] in ("reachable", "only if launches were free", "out of reach")
    assert "Variance-aware clairvoyant bound" not in out.stdout  # --json: figures only
    assert res["policies"]["oracle"]["risk_pct"] == 0
    for p in res["policies"].values():
        assert p["replica_hours"] >= res["policies"]["oracle"]["replica_hours"] * 0.999
    assert Path(res["png"]).stat().st_size > 10_000
    assert "fewer" not in out.stderr  # progress only
    assert "[bench]" in out.stderr


def test_bench_synthetic_bounds(tmp_path: Path) -> None:
    """--synthetic adds the known-level bound: told the generator's calendar level and the
    burst multiplier of two minutes earlier; --budget-variant picks a calibration quantile
    on a held-out tail within HPA 70 %'s hours there; the tables print both."""
    import importlib.util

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "bench/scaling.py", "--synthetic", "1", "--test-days", "1",
         "--no-sweep", "--estimators", "20", "--json", "--jobs", "1", "--budget-variant",
         "--png-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=True, cwd=root,
    )  # fmt: skip
    res = json.loads(out.stdout)["results"][0]
    b = res["bounds"]
    assert res["trace"] == "synthetic_1.csv"
    for key in ("known_level", "known_level_boot", "burst_onsets_known"):
        assert b[key]["replica_hours"] <= b["budget_hours"]
        assert b[key]["risk_minutes"] >= 0
    assert b["known_level_reaches_target"] == (
        b["known_level"]["risk_minutes"] <= b["risk_target_minutes"]
    )
    spec = importlib.util.spec_from_file_location("bench_scaling", root / "bench/scaling.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    text = bench.variance_tables([res])
    assert "Variance-aware clairvoyant bound" in text and "Synthetic traces" in text
    assert "synthetic_1.csv" in text
    info = res["budget_variant"]
    assert [t["quantile"] for t in info["tail"]] == list(bench.BUDGET_QUANTILES)
    fits = [t["quantile"] for t in info["tail"]
            if t["replica_hours"] <= info["tail_hpa70"]["replica_hours"]]  # fmt: skip
    assert info["quantile"] == (max(fits) if fits else None)
    assert (bench.BUDGET in res["policies"]) == (info["quantile"] is not None)
    assert "Same budget as HPA 70 %" in bench.budget_table([res])
    # the generator's levels are what the CSV was drawn around
    calendar, mult, counts = bench.synthetic_minutes(1)
    assert len(calendar) == len(mult) == len(counts) == 28 * 1440
    assert min(mult) == 1.0 and max(mult) <= 4.0
    total = sum(c * m for c, m in zip(calendar, mult, strict=True))
    assert sum(counts) == pytest.approx(total, rel=0.01)


def simulator_ts(t: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).isoformat()


# -- calibration -------------------------------------------------------------------------
def test_calibrator_raises_a_forecast_that_misses() -> None:
    from fastmango.scaler.calibrate import Calibrator

    cal = Calibrator(quantile=0.9, window=100, min_count=10)
    assert cal.factor() == 1.0 and cal.error() is None
    for k in range(100):
        cal.add(median=80.0, peak=100.0, actual=100.0 + (k % 10) * 5)  # misses by 0..45 %
    assert cal.factor() == pytest.approx(1.45)
    assert cal.error() == pytest.approx(
        sum(abs(80 - (100 + (k % 10) * 5)) for k in range(40, 100))
        / sum(100 + (k % 10) * 5 for k in range(40, 100))
    )


@pytest.mark.parametrize(
    ("actuals", "expected"),
    [([50.0] * 40, 0.5), ([90.0] * 40, 0.9), ([1000.0] * 40, 3.0)],  # bounded both ways
)
def test_calibrator_bounds(actuals: list[float], expected: float) -> None:
    from fastmango.scaler.calibrate import Calibrator

    cal = Calibrator(quantile=0.9, window=30, min_count=10)
    for a in actuals:
        cal.add(100.0, 100.0, a)
    assert cal.factor() == pytest.approx(expected)

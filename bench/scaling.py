"""Scaling policies replayed on real request traces: SLO-risk minutes against replica-hours.

    .venv/bin/python bench/scaling.py [TRACE.csv ...] [--json] [--png-dir DIR]
        [--startup 60] [--ref 10] [--variants] [--train-frac 0.5] [--test-days 14]
        [--synthetic N] [--jobs 2]

Each trace (``timestamp,value`` CSV, value = requests in the bin; default: every CSV in
../shared/traces) is replayed through fastmango's simulator (fastmango.scaler.simulator:
15 s ticks, an instance billed from launch and serving after the start-up delay L, the
load seen 60 s late, a minute SLO-risk when demand > 0.9 × ready capacity, per-instance
capacity such that the trace's p99 minute needs ``--ref`` instances) under:

- static max: the p99 minute's need, all the time;
- HPA-style reactive (fastmango.scaler.decide with the HPA's default behavior) on CPU at
  70 %, and a sweep 50/60/80 %;
- fastmango: the same reactive loop plus the quantile forecaster of the coming peak
  (gradient boosting, trained on the first part of the trace only, scored on the rest);
- the oracle: the least replica-hours with no SLO-risk minute (perfect foresight).

Prints per trace and policy: SLO-risk minutes %, replica-hours, ratio to the oracle,
scaling actions per day; checks the goals (≥ 60 % fewer SLO-risk minutes than HPA-70 %
at no more replica-hours, and ≤ 1.25 × the oracle's replica-hours); says per trace whether
those goals are reachable at all (two reference policies: the constant spare a causal
policy needs, and the best a policy knowing the coming minutes' mean load does within
1.25 × the oracle); writes a PNG per trace. ``--variants`` adds L = 30 s and 120 s and a
p99 need of 3 instances.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

from _util import emit, progress, table

from fastmango.scaler import features, simulator
from fastmango.scaler.calibrate import Calibrator
from fastmango.scaler.policy import Policy, Predictive, Targets

TRACES = Path(__file__).resolve().parent.parent.parent / "shared" / "traces"
SLO = 0.9
MAX_TRAIN_DAYS = 28


def load_trace(path: Path) -> tuple[float, list[float], float]:
    """(start, per-minute rates in req/s, native step in seconds)."""
    points: list[tuple[float, float]] = []
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:2]] != ["timestamp", "value"]:
            raise SystemExit(f"{path}: expected a 'timestamp,value' header")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                ts = datetime.fromisoformat(row[0].replace("Z", "+00:00"))
                if ts.tzinfo is None:
                    ts = ts.replace(tzinfo=UTC)
                points.append((ts.timestamp(), float(row[1])))
            except (ValueError, IndexError) as exc:
                raise SystemExit(f"{path}:{lineno}: {exc}") from None
    if len(points) < 100:
        raise SystemExit(f"{path}: too short ({len(points)} rows)")
    points.sort()
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(points))
    step = steps[len(steps) // 2]
    rates = [(t, v / step) for t, v in points]
    start, minutes = features.resample_minutes(rates)
    return start, minutes, step


def synthetic_trace(path: Path, seed: int, days: int = 28) -> Path:
    """A trace no policy was tuned on: per-minute Poisson counts around a daily and weekly
    cycle (random phase, amplitude, weekend dip), a random trend, and random bursts
    (×1.5–4 for 5–90 min, ramping up over 0–10 min). Written as ``timestamp,value``."""
    import random

    rnd = random.Random(seed)
    level = rnd.uniform(20, 400)  # requests per minute at the mean
    amp = rnd.uniform(0.3, 0.9)
    phase = rnd.uniform(0, 1)
    weekend = rnd.uniform(0.4, 1.0)
    trend = rnd.uniform(-0.3, 1.0) / (days * 1440)
    bursts: list[tuple[int, int, int, float]] = []
    t = 0
    while t < days * 1440:
        t += int(rnd.expovariate(1 / rnd.uniform(600, 3000)))
        bursts.append((t, rnd.randint(0, 10), rnd.randint(5, 90), rnd.uniform(1.5, 4.0)))
    start = datetime(2026, 1, 5, tzinfo=UTC).timestamp()
    with path.open("w") as fh:
        fh.write("timestamp,value\n")
        b = 0
        for i in range(days * 1440):
            tod = (i % 1440) / 1440
            lam = level * (1 + amp * math.sin(2 * math.pi * (tod - phase))) * (1 + trend * i)
            if (i // 1440) % 7 >= 5:
                lam *= weekend
            while b < len(bursts) and bursts[b][0] + bursts[b][1] + bursts[b][2] < i:
                b += 1
            if b < len(bursts) and bursts[b][0] <= i:
                s0, ramp, _dur, mult = bursts[b]
                k = min(1.0, (i - s0 + 1) / (ramp + 1))
                lam *= 1 + (mult - 1) * k
            # Poisson by normal approximation (λ ≥ 10 here almost always)
            n = max(0, round(rnd.gauss(lam, math.sqrt(max(lam, 1e-9)))))
            ts = datetime.fromtimestamp(start + 60 * i, UTC).isoformat()
            fh.write(f"{ts},{n}\n")
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]


def make_forecasts(
    start: float,
    minutes: list[float],
    split: int,
    horizon: int,
    quantile: float,
    estimators: int = 120,
    calibrate: bool = True,
) -> tuple[list[tuple[float, float, float]], list[float | None], float]:
    """Fit on minutes before ``split`` (≤ 28 days), forecast each later minute from the
    minutes before it. Returns per-test-minute (low, peak, high), recent error, fit time."""
    from fastmango.scaler.forecast import PeakForecaster

    lo = max(0, split - MAX_TRAIN_DAYS * 1440)
    train = minutes[lo:split]
    every = max(1, len(train) // 20000)
    x, y, _ = features.dataset(train, start + lo * 60, horizon, every=every)
    t0 = time.perf_counter()
    model = PeakForecaster(quantile=quantile, n_estimators=estimators).fit(x, y)
    fit_s = time.perf_counter() - t0
    idx = list(range(split - 1, len(minutes) - 1))
    rows, bases = features.rows(minutes, start, horizon, idx)
    med, q = model.predict_band(rows)
    out = []
    for b, m, p in zip(bases, med, q, strict=True):
        low, peak = features.to_load(float(m), b), features.to_load(float(p), b)
        out.append((min(low, peak), max(low, peak), max(low, peak)))
    raw_peaks = [o[1] for o in out]
    # as the agent does: each closed window calibrates the peak forecast (conformal
    # factor) and measures the median's recent error
    actual = features.forward_peaks(minutes, horizon)
    cal = Calibrator(quantile)
    errs: list[float | None] = []
    for m in range(len(out)):
        j = m - horizon  # the forecast issued for minute j covers j .. j+horizon-1
        if j >= 0:
            cal.add(out[j][0], raw_peaks[j], actual[split - 1 + j])
        f = cal.factor() if calibrate else 1.0
        out[m] = (out[m][0], out[m][1] * f, out[m][2] * f)
        errs.append(cal.error())
    return out, errs, fit_s


def hpa_policy(target: float, startup: float, maximum: int) -> Policy:
    return Policy(min=1, max=maximum, targets=Targets(cpu=target), startup=startup)


def fastmango_policy(startup: float, maximum: int, quantile: float) -> Policy:
    """What ``fastmango scale --cpu=70% --predictive`` sets: the same reactive target and
    behavior as the HPA baseline (scale-down stabilization 300 s), plus the calibrated
    forecast peak sized at the SLO line (90 % of an instance) as a floor: the forecast
    only raises capacity ahead of need."""
    return Policy(
        min=1,
        max=maximum,
        targets=Targets(cpu=70.0),
        startup=startup,
        predictive=Predictive(enabled=True, quantile=quantile, utilization=SLO),
    )


def run_trace(job: dict[str, Any]) -> dict[str, Any]:
    path = Path(job["path"])
    startup, ref, sweep = job["startup"], job["ref"], job["sweep"]
    start, minutes, step = load_trace(path)
    capacity = percentile(minutes, 99) / (SLO * ref)  # the trace's p99 minute needs `ref`
    split = int(len(minutes) * job["train_frac"])
    end = min(len(minutes), split + int(job["test_days"] * 1440))
    minutes = minutes[:end]  # the scored part: at most --test-days after the split
    test = minutes[split:]
    maximum = 6 * ref
    horizon = math.ceil(startup / 60) + 2
    progress(f"{path.name} L={startup:g}s ref={ref}: fitting the forecaster")
    fc, errs, fit_s = make_forecasts(
        start, minutes, split, horizon, job["quantile"], job["estimators"]
    )
    history = split * 60.0
    res: dict[str, Any] = {}
    series: dict[str, list[float]] = {}

    def sim(name: str, ctl: simulator.Controller) -> None:
        t0 = time.perf_counter()
        r = simulator.simulate(test, ctl, capacity=capacity, startup=startup, slo=SLO)
        res[name] = {"risk_pct": r.risk_pct, "risk_minutes": r.risk_minutes,
                     "replica_hours": r.replica_hours, "actions_per_day": r.actions_per_day,
                     "sim_s": time.perf_counter() - t0}  # fmt: skip
        series[name] = r.replicas

    static = simulator.need(percentile(minutes[:split], 99), capacity, SLO)
    sim("static max", simulator.static_controller(static))
    for target in sweep:
        sim(f"HPA {target:g}%", simulator.hpa_controller(hpa_policy(target, startup, maximum)))
    pol = fastmango_policy(startup, maximum, job["quantile"])
    sim("fastmango", simulator.hpa_controller(pol, fc, history=history, errors=errs))
    oracle = simulator.oracle_replica_hours(test, capacity, startup=startup, slo=SLO)
    res["oracle"] = {"risk_pct": 0.0, "risk_minutes": 0, "replica_hours": oracle,
                     "actions_per_day": math.nan}  # fmt: skip
    for r in res.values():
        r["vs_oracle"] = r["replica_hours"] / oracle if oracle else math.nan
    hpa70, fm = res.get("HPA 70%"), res["fastmango"]
    goals = {}
    if hpa70:
        fewer = (1 - fm["risk_minutes"] / hpa70["risk_minutes"]) if hpa70["risk_minutes"] else (
            1.0 if fm["risk_minutes"] == 0 else -math.inf)  # fmt: skip
        goals = {
            "risk_reduction_vs_hpa70": fewer,
            "risk_goal": fewer >= 0.6,
            "hours_vs_hpa70": fm["replica_hours"] / hpa70["replica_hours"],
            "hours_goal": fm["replica_hours"] <= hpa70["replica_hours"],
            "oracle_goal": fm["vs_oracle"] <= 1.25,
        }
    bounds: dict[str, Any] = {}
    if hpa70:
        # reference policies that say whether a goal is reachable at all in this model
        target = math.floor(0.4 * hpa70["risk_minutes"])
        c = simulator.causal_margin_bound(test, capacity, risk_minutes=target, slo=SLO)
        v = simulator.clairvoyant_margin_bound(test, capacity, replica_hours=1.25 * oracle,
                                               slo=SLO)  # fmt: skip
        bounds = {
            "risk_target_minutes": target,
            "causal_margin": None if c is None else c.margin,
            "causal_hours_vs_hpa70": None if c is None
            else c.replica_hours / hpa70["replica_hours"],
            "clairvoyant_risk_minutes_at_1.25_oracle": None if v is None else v.risk_minutes,
        }  # fmt: skip
    png = None
    if job.get("png_dir"):
        png = plot(path, Path(job["png_dir"]), startup, ref, test, capacity, series, fc)
    used = sum(1 for e in errs if e is not None and e <= 0.5)
    return {
        "trace": path.name, "startup_s": startup, "ref": ref, "step_s": step,
        "test_minutes": len(test), "train_minutes": split, "capacity_rps": capacity,
        "horizon_min": horizon, "fit_s": fit_s, "forecast_used_share": used / len(errs),
        "policies": res, "goals": goals, "bounds": bounds, "png": png,
    }  # fmt: skip


def plot(path: Path, out_dir: Path, startup: float, ref: int, test: list[float],
         capacity: float, series: dict[str, list[float]],
         fc: list[tuple[float, float, float]]) -> str:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    n = min(len(test), 3 * 1440)  # the first three days of the scored part
    fig, ax = plt.subplots(figsize=(14, 5))
    xs = [i / 60 for i in range(n)]
    ax.plot(xs, [test[i] / (SLO * capacity) for i in range(n)], color="black", lw=0.8,
            label="demand (instances needed at 90 %)")  # fmt: skip
    lo = [fc[i][0] / (SLO * capacity) for i in range(n)]
    hi = [fc[i][1] / (SLO * capacity) for i in range(n)]
    ax.fill_between(xs, lo, hi, color="orange", alpha=0.3, label="forecast band (q50–q90 peak)")
    for name in ("HPA 70%", "fastmango", "static max"):
        if name in series:
            ax.step(xs, series[name][:n], where="post", lw=1, label=f"instances: {name}")
    ax.set_xlabel("hours into the scored part")
    ax.set_ylabel("instances")
    ax.set_title(f"{path.name}: L={startup:g}s, p99 minute needs {ref}")
    ax.legend(loc="upper left", fontsize=8)
    target = out_dir / f"scaling_{path.stem}_L{startup:g}_ref{ref}.png"
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return str(target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("traces", nargs="*", type=Path, help="CSV files (default ../shared/traces)")
    ap.add_argument("--startup", type=float, default=60.0, help="start-up delay L, seconds")
    ap.add_argument("--ref", type=int, default=10, help="instances the p99 minute needs")
    ap.add_argument("--variants", action="store_true", help="also L=30,120 s and ref=3")
    ap.add_argument(
        "--train-frac",
        type=float,
        default=0.5,
        help="share of the trace to train on (at most its last 28 days)",
    )
    ap.add_argument(
        "--test-days",
        type=float,
        default=14.0,
        help="score at most this many days after the training part",
    )
    ap.add_argument("--quantile", type=float, default=0.9)
    ap.add_argument("--estimators", type=int, default=120, help="boosting stages per model")
    ap.add_argument("--no-sweep", action="store_true", help="only HPA 70 %%")
    ap.add_argument("--png-dir", type=Path, default=Path("bench/out"))
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="also N seeded synthetic traces (seeds 1..N), written to --png-dir",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    traces = list(args.traces) or ([] if args.synthetic else sorted(TRACES.glob("*.csv")))
    if args.synthetic:
        args.png_dir.mkdir(parents=True, exist_ok=True)
        traces += [synthetic_trace(args.png_dir / f"synthetic_{k}.csv", k)
                   for k in range(1, args.synthetic + 1)]  # fmt: skip
    if not traces:
        raise SystemExit(f"no traces given and none in {TRACES}")
    for t in traces:
        if not t.is_file():
            raise SystemExit(f"{t}: no such file")
    sweep = [70.0] if args.no_sweep else [50.0, 60.0, 70.0, 80.0]
    combos = [(args.startup, args.ref, sweep)]
    if args.variants:
        combos += [(30.0, args.ref, [70.0]), (120.0, args.ref, [70.0]), (args.startup, 3, [70.0])]
    jobs = [{"path": str(t), "startup": s, "ref": r, "sweep": sw, "train_frac": args.train_frac,
             "quantile": args.quantile, "estimators": args.estimators,
             "test_days": args.test_days,
             "png_dir": str(args.png_dir) if (s, r) == combos[0][:2]
             else None} for s, r, sw in combos for t in traces]  # fmt: skip
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_trace, jobs))
    progress(f"done in {time.perf_counter() - t0:.0f}s")
    rows = []
    for r in results:
        for name, p in r["policies"].items():
            rows.append([r["trace"], f"{r['startup_s']:g}", r["ref"], name,
                         round(p["risk_pct"], 3), round(p["replica_hours"], 1),
                         round(p["vs_oracle"], 3), round(p["actions_per_day"], 1)])  # fmt: skip
    text = table(["trace", "L s", "p99 need", "policy", "SLO-risk min %", "replica-h",
                  "× oracle", "actions/day"], rows)  # fmt: skip
    grows = []
    for r in results:
        g = r["goals"]
        if g:
            grows.append([r["trace"], f"{r['startup_s']:g}", r["ref"],
                          f"{100 * g['risk_reduction_vs_hpa70']:.0f}%",
                          "pass" if g["risk_goal"] else "FAIL",
                          f"{g['hours_vs_hpa70']:.3f}", "pass" if g["hours_goal"] else "FAIL",
                          f"{r['policies']['fastmango']['vs_oracle']:.3f}",
                          "pass" if g["oracle_goal"] else "FAIL",
                          f"{100 * r['forecast_used_share']:.0f}%"])  # fmt: skip
    text += "\n\nGoals (fastmango vs HPA 70 %, and vs the oracle):\n" + table(
        ["trace", "L s", "p99 need", "fewer risk min", "≥60%", "hours / HPA70", "≤1",
         "× oracle", "≤1.25", "forecast trusted"], grows)  # fmt: skip
    brows = []
    for r in results:
        b = r.get("bounds")
        if b:
            cm, ch = b["causal_margin"], b["causal_hours_vs_hpa70"]
            cv = b["clairvoyant_risk_minutes_at_1.25_oracle"]
            brows.append([r["trace"], f"{r['startup_s']:g}", r["ref"],
                          r["policies"]["HPA 70%"]["risk_minutes"], b["risk_target_minutes"],
                          "-" if cm is None else f"×{cm:.2f}",
                          "-" if ch is None else f"{ch:.3f}",
                          "-" if cv is None else cv])  # fmt: skip
    text += (
        "\n\nReachability (reference policies, no start-up cost charged): the spare over the"
        " load seen 2 min earlier that holds risk to the target, and its hours ÷ HPA 70 %;"
        " the fewest risk minutes within 1.25 × the oracle's hours knowing the next 2 min:\n"
    ) + table(["trace", "L s", "p99 need", "HPA70 risk min", "target ≤", "causal spare",
               "its h / HPA70", "clairvoyant risk min"], brows)  # fmt: skip
    pngs = [r["png"] for r in results if r["png"]]
    if pngs:
        text += "\n\nCharts: " + ", ".join(pngs)
    all_met = all(r["goals"] and r["goals"]["risk_goal"] and r["goals"]["hours_goal"]
                  and r["goals"]["oracle_goal"] for r in results)  # fmt: skip
    emit({"results": results, "all_goals_met": all_met}, text, args.json)


if __name__ == "__main__":
    main()

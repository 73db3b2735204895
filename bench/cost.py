"""How close `fastmango billing`'s month-end projection lands, against a straight line.

Real request-rate traces (../shared/traces) drive an autoscaled instance count (per hour,
``ceil(demand / capacity)``, capacity = peak / --peak-instances), written as the
``replicas`` history the bill reads. At day 7, 14 and 21 of every calendar month the
trace covers in full, the bill's projection of the month's instance-hours (seasonal,
from the history before the cut) and a straight line (month-to-date rate × month) are
compared with the month's actual total. Also: the time to compute one environment's
bill from a month of per-minute replica changes.

    .venv/bin/python bench/cost.py [--traces nyc_taxi_30min,wc98_5min] [--json]
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._util import emit, median, progress, table
from fastmango.scaler.cost.bill import EnvInput, env_bill
from fastmango.scaler.cost.pricing import Catalogue
from fastmango.scaler.cost.usage import Change, month_bounds

TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
HOUR = 3600.0
DAY = 86400.0
SIZE, PLATFORM = "shared-cpu-1x-1gb", "fly"


def load(name: str) -> list[tuple[float, float]]:
    """(hour start, mean demand per bin) per hour of the trace (timestamps read as UTC)."""
    acc: dict[float, list[float]] = {}
    with (TRACES / f"{name}.csv").open() as f:
        for row in csv.DictReader(f):
            stamp = row["timestamp"].replace("Z", "")
            t = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
            acc.setdefault(t // HOUR * HOUR, []).append(float(row["value"]))
    return [(h, sum(v) / len(v)) for h, v in sorted(acc.items())]


def history(hourly: list[tuple[float, float]], peak_instances: int) -> tuple[Change, ...]:
    cap = max(v for _, v in hourly) / peak_instances
    out: list[Change] = []
    for t, v in hourly:
        n = max(1, math.ceil(v / cap - 1e-9))
        if not out or out[-1].replicas != n:
            out.append(Change(t, n, SIZE, PLATFORM, "bench"))
    return tuple(out)


def months(hourly: list[tuple[float, float]]) -> list[tuple[float, float]]:
    first, last = hourly[0][0], hourly[-1][0] + HOUR
    out = []
    m0, m1 = month_bounds(first)
    while m1 <= last:
        if m0 >= first:
            out.append((m0, m1))
        m0, m1 = month_bounds(m1 + 1)
    return out


def evaluate(name: str, peak_instances: int, cat: Catalogue) -> list[dict[str, float | str]]:
    hourly = load(name)
    changes = history(hourly, peak_instances)
    rows = []
    for m0, m1 in months(hourly):
        env = EnvInput("bench", PLATFORM, SIZE, changes=changes)
        actual = env_bill(env, cat, m1 - 1e-3)["lines"][0]["quantity_month_to_date"]
        for day in (7, 14, 21):
            cut = m0 + day * DAY
            past = tuple(c for c in changes if c.ts <= cut)  # nothing after the cut is known
            line = env_bill(EnvInput("bench", PLATFORM, SIZE, changes=past), cat, cut)["lines"][0]
            seasonal = line["quantity_projected"]
            linear = line["quantity_month_to_date"] / (cut - m0) * (m1 - m0)
            rows.append({
                "trace": name,
                "month": datetime.fromtimestamp(m0, UTC).strftime("%Y-%m"),
                "day": day,
                "actual_instance_hours": actual,
                "seasonal_error_pct": 100 * (seasonal - actual) / actual,
                "linear_error_pct": 100 * (linear - actual) / actual,
            })  # fmt: skip
    return rows


def timing(cat: Catalogue, runs: int = 5) -> float:
    """Milliseconds to compute one environment's bill at month end from a month of
    per-minute replica changes (median of ``runs``)."""
    m0 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    changes = tuple(Change(m0 - 28 * DAY + i * 60, 1 + (i % 7), SIZE, PLATFORM)
                    for i in range(58 * 1440))  # fmt: skip
    env = EnvInput("bench", PLATFORM, SIZE, changes=changes)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        env_bill(env, cat, m0 + 29.5 * DAY)
        times.append((time.perf_counter() - t) * 1000)
    return median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", default="nyc_taxi_30min,wc98_5min")
    ap.add_argument("--peak-instances", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cat = Catalogue.load()
    rows: list[dict[str, float | str]] = []
    for name in args.traces.split(","):
        progress(f"{name}: projecting each month at day 7, 14, 21")
        rows += evaluate(name, args.peak_instances, cat)
    progress("timing one bill over a month of per-minute changes")
    ms = timing(cat)
    summary = []
    for name in [*args.traces.split(","), "all"]:
        sel = [r for r in rows if name in ("all", r["trace"])]
        s = median([abs(float(r["seasonal_error_pct"])) for r in sel])
        lin = median([abs(float(r["linear_error_pct"])) for r in sel])
        summary.append({"trace": name, "projections": len(sel),
                        "seasonal_median_abs_error_pct": s, "linear_median_abs_error_pct": lin,
                        "linear_over_seasonal": lin / s if s else math.nan})  # fmt: skip
    text = table(
        ["trace", "month", "day", "actual inst-h", "seasonal err %", "straight line err %"],
        [[r["trace"], r["month"], r["day"], r["actual_instance_hours"], r["seasonal_error_pct"],
          r["linear_error_pct"]] for r in rows],
    )  # fmt: skip
    text += "\n\n" + table(
        ["trace", "projections", "seasonal |err| median %", "straight line |err| median %",
         "ratio"],
        [[s["trace"], s["projections"], s["seasonal_median_abs_error_pct"],
          s["linear_median_abs_error_pct"], s["linear_over_seasonal"]] for s in summary],
    )  # fmt: skip
    text += f"\n\none bill from a month of per-minute replica changes: {ms:.0f} ms (median of 5)"
    emit({"rows": rows, "summary": summary, "bill_ms": ms}, text, args.json)


if __name__ == "__main__":
    main()

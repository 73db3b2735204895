"""Usage accounting and the month's bill: a simulated month of replica history gives the
expected totals; the projection is seasonal, not a straight line; unknown stays unknown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fastmango.scaler.cost import projection
from fastmango.scaler.cost.bill import EnvInput, bill, env_bill
from fastmango.scaler.cost.pricing import Catalogue
from fastmango.scaler.cost.usage import (
    Change,
    changes_from_events,
    counter_increase,
    hourly_replicas,
    month_bounds,
    segments,
    sum_hourly,
)

HOUR = 3600.0
DAY = 86400.0
NOV1 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()  # a Sunday
DEC1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
OCT1 = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
PRICE_1GB = 5.70 / 720  # fly shared-cpu-1x-1gb per instance-hour ($5.70 per 30 days)


def office(t: float) -> bool:
    d = datetime.fromtimestamp(t, UTC)
    return d.weekday() < 5 and 8 <= d.hour < 20


def weekly_history(start: float, end: float, busy: int, quiet: int) -> tuple[Change, ...]:
    """``busy`` instances weekdays 08:00-20:00 UTC, ``quiet`` otherwise, as the scaler
    would record it: one replicas event per change."""
    out: list[Change] = []
    t = start
    while t < end:
        n = busy if office(t) else quiet
        if not out or out[-1].replicas != n:
            out.append(Change(t, n, "shared-cpu-1x-1gb", "fly", "scaler"))
        t += HOUR
    return tuple(out)


@pytest.fixture
def cat() -> Catalogue:
    return Catalogue.load()


def test_a_simulated_month_gives_the_expected_totals(cat: Catalogue) -> None:
    # November 2026: 21 weekdays, 9 weekend days. 1 instance always, 10 in office hours:
    # 720 + 9 × 21 × 12 = 2988 instance-hours × $5.70/720 = $23.655; egress 1 GB an hour
    # for 720 hours at $0.02/GB = $14.40
    history = weekly_history(OCT1, DEC1, busy=10, quiet=1)
    egress = tuple((t, 1e9) for t in range(int(OCT1), int(DEC1), 3600))
    env = EnvInput("production", "fly", "shared-cpu-1x-1gb", changes=history, budget=30.0,
                   egress=egress)  # fmt: skip
    end = env_bill(env, cat, DEC1 - 1e-3)
    compute, egress_line = end["lines"]
    assert compute["quantity_month_to_date"] == pytest.approx(2988, abs=0.01)
    assert compute["month_to_date"] == pytest.approx(23.655, abs=0.001)
    assert egress_line["quantity_month_to_date"] == pytest.approx(720)
    assert egress_line["month_to_date"] == pytest.approx(14.40)
    assert end["month_to_date"] == pytest.approx(38.055, abs=0.006)
    assert end["complete"] and end["over_budget"]
    # half-way (Sunday 15 November 00:00) the seasonal projection lands on the same total
    mid = env_bill(env, cat, NOV1 + 14 * DAY)
    assert mid["month_to_date"] == pytest.approx((336 + 9 * 10 * 12) * PRICE_1GB + 336 * 0.02,
                                                 abs=0.006)  # fmt: skip
    assert mid["lines"][0]["projected"] == pytest.approx(23.655, abs=0.01)
    assert mid["projected"] == pytest.approx(38.055, abs=0.02)
    assert "hour-of-week" in mid["projection"]
    # a straight line from the month-to-date rate would be off by over 1 %
    linear = mid["lines"][0]["month_to_date"] / 14 * 30
    assert abs(linear - 23.655) > 0.3


def test_spend_series_joins_actual_and_projection(cat: Catalogue) -> None:
    history = weekly_history(OCT1, DEC1, busy=4, quiet=2)
    now = NOV1 + 14 * DAY + 1800
    row = env_bill(EnvInput("p", "fly", "shared-cpu-1x-1gb", changes=history), cat, now)
    s = row["series"]
    assert s["t"] == sorted(s["t"]) and s["t"][0] == NOV1 and s["t"][-1] == DEC1
    at = s["t"].index(now)
    assert s["actual"][at] == s["projected"][at]
    assert s["actual"][at] == pytest.approx(row["known_month_to_date"], abs=0.006)
    assert all(v is None for v in s["actual"][at + 1 :])
    assert all(v is None for v in s["projected"][:at])
    assert s["projected"][-1] == pytest.approx(row["known_projected"], abs=0.01)
    actual = [v for v in s["actual"] if v is not None]
    assert actual == sorted(actual)  # cumulative


def test_cloud_run_request_billing_with_the_free_tier(cat: Catalogue) -> None:
    # 1 vCPU / 1 GiB for 1,000,000 s and 5 M requests in the month:
    # (1e6 - 180,000) × $0.000024 + (1e6 - 360,000) × $0.0000025 + 3 M × $0.40/M
    # = 19.68 + 1.60 + 1.20 = $22.48
    changes = (Change(NOV1, 1, "1cpu-1gib", "cloudrun"),)
    hours = 1_000_000 / HOUR
    requests = ((NOV1, 5e6),)
    env = EnvInput("api", "cloudrun", "1cpu-1gib", changes=changes, billing="request",
                   requests=requests, egress=())  # fmt: skip
    row = env_bill(env, cat, NOV1 + 1_000_000)
    lines = {ln["item"]: ln for ln in row["lines"]}
    assert lines["compute"]["quantity_month_to_date"] == pytest.approx(hours)
    assert lines["compute"]["month_to_date"] == pytest.approx(19.68 + 1.60, abs=0.001)
    assert lines["requests"]["month_to_date"] == pytest.approx(1.20, abs=0.001)
    assert lines["egress"]["unknown"]  # Cloud Run egress has no list price here
    assert row["month_to_date"] == pytest.approx(22.48, abs=0.01)  # known lines only
    assert not row["complete"]
    # instance-based billing of the same time: $0.000018 + $0.000002 per second
    inst = env_bill(EnvInput("api", "cloudrun", "1cpu-1gib", changes=changes), cat,
                    NOV1 + 1_000_000)  # fmt: skip
    assert inst["lines"][0]["month_to_date"] == pytest.approx(20.00, abs=0.001)


def test_gpu_time_follows_instance_time(cat: Catalogue) -> None:
    changes = (Change(NOV1, 2, "performance-1x-2gb", "fly"),)
    env = EnvInput("ml", "fly", "performance-1x-2gb", changes=changes, gpu="a100-80gb", gpus=1)
    row = env_bill(env, cat, NOV1 + 10 * HOUR)
    gpu = next(ln for ln in row["lines"] if ln["item"] == "gpu")
    assert gpu["quantity_month_to_date"] == pytest.approx(20)
    assert gpu["month_to_date"] == pytest.approx(30.00)  # 20 GPU-hours × $1.50
    assert gpu["projected"] == pytest.approx(2 * 720 * 1.50, abs=0.01)
    assert any("deprecated" in n for n in row["notes"])


@pytest.mark.parametrize(
    ("env", "unknown"),
    [
        (EnvInput("new", "render", "standard"), "no replicas events"),
        (EnvInput("k8s", "kubernetes", "1cpu-2gb",
                  changes=(Change(NOV1, 2, "1cpu-2gb", "kubernetes"),)), "kubernetes/vcpu_hour"),
        (EnvInput("gpu", "fly", "shared-cpu-1x-1gb", gpu="h100", gpus=1,
                  changes=(Change(NOV1, 1, "shared-cpu-1x-1gb", "fly"),)), "fly/gpu/h100"),
    ],
)  # fmt: skip
def test_missing_usage_or_price_is_unknown_never_zero(
    cat: Catalogue, env: EnvInput, unknown: str
) -> None:
    row = env_bill(env, cat, NOV1 + 5 * DAY)
    assert not row["complete"]
    assert any(unknown in u for u in row["unknown"]), row["unknown"]
    if "gpu" not in unknown:
        assert row["month_to_date"] is None and row["projected"] is None
    doc = bill([env], cat, NOV1 + 5 * DAY)
    assert not doc["total"]["complete"]


def test_history_starting_mid_month_counts_from_its_first_event(cat: Catalogue) -> None:
    env = EnvInput("s", "render", "standard", changes=(Change(NOV1 + 15 * DAY, 1, "standard",
                                                               "render"),))  # fmt: skip
    row = env_bill(env, cat, NOV1 + 20 * DAY)
    assert row["month_to_date"] == pytest.approx(25 * 5 / 30, abs=0.01)
    assert any("mid-month" in n for n in row["notes"])


def test_changes_from_events_and_segments() -> None:
    events = [
        {"ts": 100.0, "data": {"env": "p", "platform": "fly", "replicas": 2, "size": "a"}},
        {"ts": 50.0, "data": {"env": "p", "replicas": 1}},  # platform, size from defaults
        {"ts": 70.0, "data": {"env": "p", "replicas": "x"}},  # malformed: skipped
        {"ts": 80.0, "data": {"replicas": 3}},  # no env: skipped
    ]
    changes = changes_from_events(events, {"p": ("render", "standard")})
    assert [(c.ts, c.replicas, c.size, c.platform) for c in changes["p"]] == [
        (50.0, 1, "standard", "render"), (100.0, 2, "a", "fly")]  # fmt: skip
    segs = segments(changes["p"], 0.0, 200.0)
    assert [(s.start, s.end, s.replicas) for s in segs] == [(50, 100, 1), (100, 200, 2)]
    assert sum(s.instance_seconds for s in segs) == 250
    assert segments(changes["p"], 10.0, 40.0) == []  # before the first event: unknown


def test_hourly_replicas_is_time_weighted() -> None:
    changes = [Change(0.0, 1, "s", "p"), Change(1800.0, 3, "s", "p")]
    assert hourly_replicas(changes, 0.0, 7200.0) == [(0.0, 2.0), (3600.0, 3.0)]


def test_counter_increase_handles_resets_and_sums_per_hour() -> None:
    pts = [[0.0, 100.0], [3600.0, 300.0], [7200.0, 50.0], [10800.0, 80.0]]
    assert counter_increase(pts) == [(3600.0, 200.0), (7200.0, 50.0), (10800.0, 30.0)]
    two = sum_hourly([[(3600.0, 1.0)], [(3600.0, 2.0), (7200.0, 1.0)]])
    assert two == [(3600.0, 3.0), (7200.0, 1.0)]


def test_month_bounds() -> None:
    assert month_bounds(NOV1 + 5) == (NOV1, DEC1)
    assert month_bounds(DEC1 - 1e-3) == (NOV1, DEC1)
    feb = datetime(2028, 2, 10, tzinfo=UTC).timestamp()
    s, e = month_bounds(feb)
    assert (e - s) / DAY == 29  # a leap year


@pytest.mark.parametrize(
    ("hours", "method"),
    [(0, "none"), (10, "last-value"), (3 * 24, "hour-of-day"), (10 * 24, "hour-of-week")],
)
def test_projection_method_follows_the_history(hours: int, method: str) -> None:
    pts = [(NOV1 + h * HOUR, float(h % 24)) for h in range(hours)]
    prof = projection.fit(pts)
    assert prof.method == method
    if method == "hour-of-day":  # repeats the day's shape
        assert prof.at(NOV1 + 30 * DAY + 5 * HOUR) == pytest.approx(5.0)


def test_gpus_seen_without_a_model_are_unknown(cat: Catalogue) -> None:
    env = EnvInput("ml", "fly", "shared-cpu-1x-1gb", gpus_seen=2,
                   changes=(Change(NOV1, 1, "shared-cpu-1x-1gb", "fly"),))  # fmt: skip
    row = env_bill(env, cat, NOV1 + DAY)
    gpu = next(ln for ln in row["lines"] if ln["item"] == "gpu")
    assert gpu["month_to_date"] is None
    assert "2 GPU(s) seen" in gpu["unknown"] and "cost.environments.ml.gpu" in gpu["unknown"]
    assert row["month_to_date"] is not None and not row["complete"]

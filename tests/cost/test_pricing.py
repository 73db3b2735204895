"""The price math against worked examples from each pricing page, overrides, unknown
prices and stale flags."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fastmango.scaler.cost.pricing import Catalogue, PriceError, Size, check_override, parse_size

NOW = datetime(2026, 11, 27, tzinfo=UTC).timestamp()
HOUR = 3600.0
DAY = 86400.0
NOV = 30 * DAY  # seconds in November 2026
DEC = 31 * DAY


@pytest.fixture
def cat() -> Catalogue:
    return Catalogue.load()


@pytest.mark.parametrize(
    ("platform", "size", "seconds", "month_seconds", "dollars"),
    [
        # Fly: a preset's monthly price is per 30 days, billed per second
        ("fly", "shared-cpu-1x-256mb", 30 * DAY, NOV, 1.94),
        ("fly", "shared-cpu-1x-256mb", 30 * DAY, DEC, 1.94),  # 30 days, whatever the month
        ("fly", "shared-cpu-1x-1gb", 10 * DAY, NOV, 1.90),
        ("fly", "shared-cpu-1x-2gb", 30 * DAY, NOV, 10.70),
        ("fly", "performance-1x-2gb", 15 * DAY, NOV, 15.50),
        # Railway: $20/vCPU-month = $0.000463/vCPU-min, $10/GB-month = $0.000231/GB-min
        ("railway", "1cpu-1gb", 43200 * 60, NOV, 43200 * 0.000463 + 43200 * 0.000231),
        ("railway", "2cpu-4gb", 60, NOV, 2 * 0.000463 + 4 * 0.000231),
        # Render: the monthly price prorated per second of the calendar month
        ("render", "standard", NOV, NOV, 25.00),
        ("render", "standard", DEC, DEC, 25.00),
        ("render", "standard", NOV / 2, NOV, 12.50),
        ("render", "pro-plus", 3 * NOV, NOV, 525.00),  # 3 instances all month
        ("render", "free", NOV, NOV, 0.0),
        # Fargate: 1 vCPU + 2 GB for an hour = $0.04048 + 2 × $0.004445
        ("ecs", "1cpu-2gb", HOUR, NOV, 0.04937),
        # AWS's example: 5 tasks × 10 min a day × 30 days at 0.25 vCPU / 0.5 GB = 25 task-hours
        ("ecs", "0.25cpu-0.5gb", 5 * 600 * 30, NOV, 25 * 0.25 * 0.04048 + 25 * 0.5 * 0.004445),
        # Cloud Run instance-based: $0.000018/vCPU-s + $0.000002/GiB-s
        ("cloudrun", "1cpu-1gib", 1_000_000, NOV, 20.00),
        ("cloudrun", "2cpu-512mib", 1000, NOV, 1000 * (2 * 0.000018 + 0.5 * 0.000002)),
        # ACI: 1 vCPU + 1.5 GB for an hour
        ("azure", "1cpu-1.5gb", HOUR, NOV, 3600 * 0.0000113 + 1.5 * 3600 * 0.0000012),
    ],
)
def test_instance_prices(
    cat: Catalogue, platform: str, size: str, seconds: float, month_seconds: float, dollars: float
) -> None:
    rate = cat.rate(platform, size)
    assert rate.known, rate.unknown
    assert rate.dollars(seconds, month_seconds) == pytest.approx(dollars, abs=0.005)


@pytest.mark.parametrize(
    ("key", "hours", "gpus", "dollars"),
    [
        ("fly/gpu/a100-80gb", 10, 1, 15.00),  # wind-down rate $1.50/h
        ("fly/gpu/l40s", 24, 2, 33.60),
        ("ecs/gpu/a100-40gb", 1, 8, 21.92),  # p4d.24xlarge $21.957642/h over 8 GPUs
        ("ecs/gpu/a100-80gb", 1, 8, 27.44),  # p4de.24xlarge $27.44705/h
    ],
)
def test_gpu_hours(cat: Catalogue, key: str, hours: float, gpus: int, dollars: float) -> None:
    entry = cat.get(key)
    assert entry is not None
    assert hours * gpus * entry.value == pytest.approx(dollars, abs=0.01)


def test_fly_gpus_are_flagged_deprecated(cat: Catalogue) -> None:
    entry = cat.get("fly/gpu/a10")
    assert entry is not None and entry.deprecated(NOW)
    assert not entry.deprecated(datetime(2026, 7, 1, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("platform", "size", "why"),
    [
        ("kubernetes", "1cpu-2gb", "kubernetes/vcpu_hour"),  # no list price at all
        ("render", "huge", "render/size/huge"),  # an instance type the catalogue lacks
        ("fly", "", "no size set"),
        ("railway", "a-lot", "railway/size/a-lot"),
    ],
)
def test_a_missing_price_is_unknown_never_zero(
    cat: Catalogue, platform: str, size: str, why: str
) -> None:
    rate = cat.rate(platform, size)
    assert not rate.known
    assert rate.dollars(3600, NOV) is None
    assert rate.monthly() is None
    assert why in (rate.unknown or "")


def test_overrides_replace_and_add_prices() -> None:
    cat = Catalogue.load({
        "render/size/standard": 19.0,
        "kubernetes/vcpu_hour": 0.03,
        "kubernetes/gb_hour": 0.004,
        "render/size/custom-4cpu-8gb": 120,
    })  # fmt: skip
    assert cat.rate("render", "standard").dollars(NOV, NOV) == pytest.approx(19.0)
    k8s = cat.rate("kubernetes", "2cpu-4gb")
    assert k8s.dollars(HOUR, NOV) == pytest.approx(2 * 0.03 + 4 * 0.004)
    assert cat.rate("render", "custom-4cpu-8gb").dollars(NOV, NOV) == pytest.approx(120)
    overridden = cat.get("render/size/standard")
    assert overridden is not None and overridden.source == "config"
    assert not overridden.stale(NOW)  # the user's own price is never flagged


def test_entries_older_than_180_days_are_flagged(cat: Catalogue) -> None:
    stale = {e["key"] for e in cat.stale_entries(NOW)}
    assert "render/size/standard" in stale  # read 2026-05-04: 207 days
    assert "fly/size/performance-1x-2gb" in stale
    assert "railway/vcpu_minute" not in stale  # read 2026-08-07: 112 days
    assert "fly/egress_gb" not in stale
    every = {e["key"]: e for e in cat.as_list(NOW)}
    assert every["render/size/standard"]["age_days"] == pytest.approx(207, abs=1)
    for e in every.values():  # each entry says where it comes from and when it was read
        assert e["source"].startswith("https://") and e["as_of"]


def test_every_catalogue_platform_is_priced(cat: Catalogue) -> None:
    for platform, size in [("fly", "shared-cpu-1x-256mb"), ("railway", "1cpu-1gb"),
                           ("render", "starter"), ("ecs", "1cpu-2gb"),
                           ("cloudrun", "1cpu-1gib"), ("azure", "1cpu-1gb")]:  # fmt: skip
        assert cat.rate(platform, size).known, platform
        assert cat.candidates(platform), platform


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1cpu-2gb", Size(1, 2)),
        ("0.25vcpu-512mb", Size(0.25, 0.5)),
        ("2cpu-4gib", Size(2, 4)),
        ("shared-cpu-1x-1gb", Size(1, 1)),
        ("shared-cpu-2x", Size(2, 0.5)),
        ("performance-2x", Size(2, 4)),
        ("standard", None),
    ],
)
def test_parse_size(text: str, size: Size | None) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("fly", 1.0, "not a price key"),
        ("fly/size/Big One", 1.0, "not a price key"),
        ("railway/vcpu_minute", -1.0, "0 or more"),
        ("railway/vcpu_minute", True, "a number"),
        ("railway/vcpu_fortnight", 1.0, "unknown price kind"),
        ("ecs/gb_hour", float("nan"), "0 or more"),
    ],
)
def test_bad_overrides_are_refused_naming_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(PriceError, match=message):
        check_override(key, value)

"""Schedules (time zones, DST, overnight windows) and policies (parsing, round trip)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fastmango.scaler import hpa
from fastmango.scaler.policy import (
    Policy,
    PolicyError,
    Predictive,
    Targets,
    parse_latency,
    parse_percent,
)
from fastmango.scaler.schedule import Bounds, ScheduleError, parse

DEV = "Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0"


def ts(text: str, zone: str = "Europe/Berlin") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-11-23 08:00", Bounds(1, None)),  # Monday, opening minute
        ("2026-11-23 07:59", Bounds(0, 0)),
        ("2026-11-27 19:59", Bounds(1, None)),  # Friday
        ("2026-11-27 20:00", Bounds(0, 0)),
        ("2026-11-28 12:00", Bounds(0, 0)),  # Saturday
        ("2026-03-30 08:30", Bounds(1, None)),  # the Monday after the spring DST change
        ("2026-10-26 08:30", Bounds(1, None)),  # the Monday after the autumn change
    ],
)
def test_office_hours(when: str, expected: Bounds) -> None:
    assert parse(DEV).bounds_at(ts(when))[0] == expected


def test_zone_is_honoured() -> None:
    # 07:30 UTC is 08:30 in Berlin (winter): inside the window
    sched = parse(DEV)
    assert sched.bounds_at(ts("2026-11-23 07:30", "UTC"))[0] == Bounds(1, None)
    assert sched.bounds_at(ts("2026-11-23 07:30", "UTC"))[1].startswith("Mon-Fri")


@pytest.mark.parametrize(
    ("when", "inside"),
    [("2026-11-27 23:00", True), ("2026-11-28 05:59", True), ("2026-11-28 06:00", False),
     ("2026-11-23 03:00", False)],  # Monday 03:00 belongs to Sunday night: not in Fri-Sat
)  # fmt: skip
def test_overnight_window(when: str, inside: bool) -> None:
    sched = parse("Fri-Sat 22:00-06:00 America/New_York max=2")
    got = sched.bounds_at(ts(when, "America/New_York"))[0]
    assert (got == Bounds(None, 2)) is inside


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Mon-Fri 08:00-20:00 Mars/Olympus min=1", "unknown time zone"),
        ("Funday 08:00-20:00 UTC min=1", "unknown day"),
        ("Mon 8-20 UTC min=1", "not a range"),
        ("Mon 08:00-20:00 UTC", "expected"),
        ("Mon 08:00-20:00 UTC min=x", "not a whole number"),
        ("Mon 08:00-20:00 UTC min=3 max=2", "min above max"),
        ("otherwise", "sets nothing"),
        ("", "empty"),
    ],
)
def test_schedule_errors(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse(text)


@pytest.mark.parametrize(
    ("text", "value"), [("70%", 70.0), ("70", 70.0), (" 85.5 % ", 85.5), (80, 80.0)]
)
def test_parse_percent(text: str | float, value: float) -> None:
    assert parse_percent(text) == value


@pytest.mark.parametrize(("text", "value"), [("200ms", 0.2), ("0.5s", 0.5), ("1", 1.0)])
def test_parse_latency(text: str, value: float) -> None:
    assert parse_latency(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["seventy", "-5%", "0%"])
def test_bad_percent(bad: str) -> None:
    with pytest.raises(PolicyError, match="--cpu"):
        parse_percent(bad, "--cpu")


def test_policy_round_trip() -> None:
    pol = Policy(min=2, max=10, targets=Targets(cpu=70, rps=150, p95=0.2, gpu=80),
                 schedule=DEV, predictive=Predictive(enabled=True, utilization=0.9),
                 behavior=hpa.Behavior(scale_down=hpa.Rules(
                     120, "Min", (hpa.RatePolicy("Pods", 1, 60),))))  # fmt: skip
    assert Policy.from_dict(pol.to_dict()) == pol


@pytest.mark.parametrize(
    ("data", "message"),
    [({"min": 5, "max": 2}, "above max"), ({"max": 0}, "at least 1"),
     ({"schedule": "Mon 08:00-20:00 Nowhere/Land min=1"}, "schedule"),
     ({"colour": "blue"}, "colour")],
)  # fmt: skip
def test_policy_errors(data: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        Policy.from_dict(data)


def test_default_target_is_cpu_80() -> None:
    assert Policy().effective_targets == Targets(cpu=80.0)


def test_horizon_covers_startup() -> None:
    assert Policy(startup=60).horizon() >= 60 + 15
    assert Policy(startup=300).horizon() >= 300

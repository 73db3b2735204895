"""Seasonal projection of an hourly series to the end of the month (never a straight line).

The forecast for an hour is the mean of the same hour of the week over the weeks of
history (up to ``weeks``), scaled by the recent level: the last day's mean against the
profile's mean for the same hours, so a step up (or growth) carries into the projection.
With under a week of history the profile is by hour of the day; with under a day, the
last value holds (and the method says so). Pure: the points and the hours to project come in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY


@dataclass(frozen=True)
class Profile:
    method: str  # hour-of-week | hour-of-day | last-value | none
    period: float
    means: dict[int, float] = field(default_factory=dict)
    fallback: float | None = None
    level: float = 1.0
    history_hours: int = 0

    def at(self, t: float) -> float | None:
        if self.method == "none":
            return None
        if self.method == "last-value":
            return self.fallback
        slot = int((t % self.period) // HOUR)
        value = self.means.get(slot, self.fallback)
        return None if value is None else value * self.level

    def describe(self) -> str:
        if self.method == "none":
            return "no history to project from"
        if self.method == "last-value":
            return "last value held (under a day of history)"
        lvl = f", scaled ×{self.level:.2f} to the last day's level" if self.level != 1.0 else ""
        return f"seasonal {self.method} means over {self.history_hours} h of history{lvl}"


def fit(points: Sequence[tuple[float, float]], weeks: int = 4) -> Profile:
    """A profile from hourly (hour start, value) points, newest last."""
    if not points:
        return Profile("none", WEEK)
    pts = sorted(points)
    end = pts[-1][0]
    pts = [p for p in pts if p[0] > end - weeks * WEEK]
    span = pts[-1][0] - pts[0][0] + HOUR
    last = pts[-1][1]
    if span < DAY:
        return Profile("last-value", DAY, fallback=last, history_hours=len(pts))
    period, method = (WEEK, "hour-of-week") if span >= WEEK else (DAY, "hour-of-day")
    sums: dict[int, list[float]] = {}
    for t, v in pts:
        sums.setdefault(int((t % period) // HOUR), []).append(v)
    means = {k: sum(v) / len(v) for k, v in sums.items()}
    overall = sum(means.values()) / len(means)
    level = 1.0
    if span >= 2 * DAY and overall > 0:
        recent = [v for t, v in pts if t > end - DAY]
        recent_profile = [means[int((t % period) // HOUR)] for t, _ in pts if t > end - DAY]
        base = sum(recent_profile) / len(recent_profile)
        if base > 0:
            level = (sum(recent) / len(recent)) / base
    return Profile(method, period, means, fallback=overall, level=level, history_hours=len(pts))


def project(profile: Profile, start: float, end: float) -> list[tuple[float, float, float | None]]:
    """(from, to, value) for each hour (or part of one) of [start, end)."""
    out = []
    t = start
    while t < end:
        nxt = min(end, (t // HOUR + 1) * HOUR)
        out.append((t, nxt, profile.at(t)))
        t = nxt
    return out

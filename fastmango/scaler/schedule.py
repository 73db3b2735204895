"""Timezone-aware schedules: ``'Mon-Fri 08:00-20:00 Europe/Berlin min=1; otherwise 0'``.

A schedule is a list of windows, each with days, a time range, an IANA time zone and the
bounds it sets (``min=N``, ``max=N``, or a bare ``N`` meaning exactly N), and an
``otherwise`` clause for the rest of the week. The first window that matches wins, like
KEDA's cron scaler where ``desiredReplicas`` acts as a minimum. A window that ends before
it starts (``22:00-06:00``) runs over midnight; the part after midnight belongs to the day
it started on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


class ScheduleError(ValueError):
    """A schedule that cannot be read; the message names the part at fault."""


@dataclass(frozen=True)
class Bounds:
    """What a window sets; None leaves the policy's own bound."""

    min: int | None = None
    max: int | None = None

    def describe(self) -> str:
        if self.min is not None and self.min == self.max:
            return str(self.min)
        parts = []
        if self.min is not None:
            parts.append(f"min={self.min}")
        if self.max is not None:
            parts.append(f"max={self.max}")
        return " ".join(parts)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight
    end: int
    zone: str
    bounds: Bounds
    text: str = ""

    def matches(self, when: float) -> bool:
        local = datetime.fromtimestamp(when, ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return local.weekday() in self.days and self.start <= minute < self.end
        if self.start == self.end:  # the whole day
            return local.weekday() in self.days
        if minute >= self.start:
            return local.weekday() in self.days
        yesterday = (local - timedelta(days=1)).weekday()
        return minute < self.end and yesterday in self.days


@dataclass(frozen=True)
class Schedule:
    windows: tuple[Window, ...]
    otherwise: Bounds | None
    text: str

    def bounds_at(self, when: float) -> tuple[Bounds | None, str]:
        """The bounds in force at ``when`` (Unix seconds) and which clause set them."""
        for window in self.windows:
            if window.matches(when):
                return window.bounds, window.text
        if self.otherwise is not None:
            return self.otherwise, "otherwise " + self.otherwise.describe()
        return None, ""


def _days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        if part in ("daily", "every", "all", "*"):
            out.update(range(7))
            continue
        ends = part.split("-")
        try:
            idx = [DAYS.index(e[:3]) for e in ends]
        except ValueError:
            raise ScheduleError(f"unknown day in {text!r} (use Mon..Sun, e.g. Mon-Fri)") from None
        if len(idx) == 1:
            out.add(idx[0])
        elif len(idx) == 2:
            d = idx[0]
            while True:
                out.add(d)
                if d == idx[1]:
                    break
                d = (d + 1) % 7
        else:
            raise ScheduleError(f"bad day range {part!r}")
    return frozenset(out)


def _bounds(tokens: list[str], clause: str) -> Bounds:
    lo: int | None = None
    hi: int | None = None
    if not tokens:
        raise ScheduleError(f"{clause!r} sets nothing (add min=N, max=N or N)")
    for tok in tokens:
        key, _, value = tok.partition("=")
        try:
            if not value:
                lo = hi = int(key)
            elif key == "min":
                lo = int(value)
            elif key == "max":
                hi = int(value)
            else:
                raise ScheduleError(f"unknown setting {key!r} in {clause!r} (min=, max=)")
        except ValueError:
            raise ScheduleError(f"{tok!r} in {clause!r} is not a whole number") from None
    if (lo is not None and lo < 0) or (hi is not None and hi < 0):
        raise ScheduleError(f"negative replicas in {clause!r}")
    if lo is not None and hi is not None and lo > hi:
        raise ScheduleError(f"min above max in {clause!r}")
    return Bounds(lo, hi)


def parse(text: str) -> Schedule:
    """Read a schedule; raises :class:`ScheduleError` naming the clause at fault."""
    windows: list[Window] = []
    otherwise: Bounds | None = None
    clauses = [c.strip() for c in text.split(";")]
    if not any(clauses):
        raise ScheduleError("empty schedule")
    for clause in clauses:
        if not clause:
            continue
        tokens = clause.split()
        if tokens[0].lower() == "otherwise":
            otherwise = _bounds(tokens[1:], clause)
            continue
        if len(tokens) < 4:
            raise ScheduleError(
                f"{clause!r}: expected 'DAYS HH:MM-HH:MM ZONE min=N' "
                "(e.g. 'Mon-Fri 08:00-20:00 Europe/Berlin min=1')"
            )
        days = _days(tokens[0])
        m = _TIME.match(tokens[1])
        if not m:
            raise ScheduleError(f"{tokens[1]!r} in {clause!r} is not a range like 08:00-20:00")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59:
            raise ScheduleError(f"{tokens[1]!r} in {clause!r} is not a time of day")
        try:
            ZoneInfo(tokens[2])
        except (ZoneInfoNotFoundError, ValueError):
            raise ScheduleError(f"unknown time zone {tokens[2]!r} in {clause!r}") from None
        start, end = h1 * 60 + m1, h2 * 60 + m2
        windows.append(Window(days, start % 1440, end % 1440 if end != 1440 else 0,
                              tokens[2], _bounds(tokens[3:], clause), clause))  # fmt: skip
    return Schedule(tuple(windows), otherwise, text.strip())

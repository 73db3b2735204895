"""Usage accounting: instance time from the replica history, egress from a counter.

An environment's instance count is a step function set by ``replicas`` events (see
docs/events.md): from each event on, ``replicas`` instances of ``size`` run until the
next event. Usage is replicas × time per size; before an environment's first event its
usage is unknown (never zero). Pure functions: the events and the clock come in.
"""

from __future__ import annotations

import bisect
import calendar
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR = 3600.0


@dataclass(frozen=True)
class Change:
    """From ``ts`` on, ``replicas`` instances of ``size`` run on ``platform``."""

    ts: float
    replicas: int
    size: str
    platform: str
    source: str = ""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    replicas: int
    size: str
    platform: str

    @property
    def instance_seconds(self) -> float:
        return self.replicas * (self.end - self.start)


def changes_from_events(
    events: Iterable[Mapping[str, Any]], defaults: Mapping[str, tuple[str, str]] | None = None
) -> dict[str, list[Change]]:
    """``replicas`` events (``{"ts", "data": {env, platform, replicas, size, source}}``) →
    each environment's changes in time order. ``defaults`` gives (platform, size) per
    environment for events that leave them empty. Malformed events are skipped."""
    out: dict[str, list[Change]] = {}
    for ev in events:
        d = ev.get("data") or {}
        env = d.get("env")
        try:
            replicas = int(d["replicas"])
            ts = float(ev["ts"])
        except (TypeError, ValueError, KeyError):
            continue
        if not env or replicas < 0:
            continue
        platform, size = (defaults or {}).get(env, ("", ""))
        out.setdefault(env, []).append(
            Change(
                ts,
                replicas,
                str(d.get("size") or size),
                str(d.get("platform") or platform),
                str(d.get("source") or ""),
            )
        )
    for changes in out.values():
        changes.sort(key=lambda c: c.ts)
    return out


def segments(changes: Sequence[Change], start: float, end: float) -> list[Segment]:
    """The known stretches of [start, end): each with its replicas, size and platform."""
    if end <= start or not changes:
        return []
    times = [c.ts for c in changes]
    i = max(0, bisect.bisect_right(times, start) - 1)
    out = []
    for j in range(i, len(changes)):
        c = changes[j]
        s = max(start, c.ts)
        e = min(end, changes[j + 1].ts if j + 1 < len(changes) else end)
        if c.ts >= end:
            break
        if e > s:
            out.append(Segment(s, e, c.replicas, c.size, c.platform))
    return out


def state_at(changes: Sequence[Change], t: float) -> Change | None:
    times = [c.ts for c in changes]
    i = bisect.bisect_right(times, t) - 1
    return changes[i] if i >= 0 else None


def hourly_replicas(
    changes: Sequence[Change], start: float, end: float
) -> list[tuple[float, float]]:
    """(hour start, time-weighted mean replicas) for every hour of [start, end) that the
    history covers in full or in part (uncovered hours are left out)."""
    inst: dict[float, float] = {}
    covered: dict[float, float] = {}
    for seg in segments(changes, start, end):
        t = seg.start
        while t < seg.end:
            h = t // HOUR * HOUR
            nxt = min(seg.end, h + HOUR)
            inst[h] = inst.get(h, 0.0) + seg.replicas * (nxt - t)
            covered[h] = covered.get(h, 0.0) + nxt - t
            t = nxt
    return [(h, inst[h] / covered[h]) for h in sorted(inst) if covered[h] > 0]


def counter_increase(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """Counter readings (t, value) → (t, increase since the previous reading); a drop is
    a reset, so the increase is the new value."""
    out = []
    for (_t0, v0), (t1, v1) in itertools.pairwise(points):
        out.append((t1, v1 - v0 if v1 >= v0 else v1))
    return out


def sum_hourly(series: Iterable[Iterable[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Add several (t, value) series into one per hour (the hour each ``t`` falls in)."""
    acc: dict[float, float] = {}
    for s in series:
        for t, v in s:
            h = t // HOUR * HOUR
            acc[h] = acc.get(h, 0.0) + v
    return sorted(acc.items())


# -- months ------------------------------------------------------------------------------
def month_bounds(now: float) -> tuple[float, float]:
    """Start and end (Unix seconds) of the UTC calendar month holding ``now``."""
    d = datetime.fromtimestamp(now, UTC)
    start = datetime(d.year, d.month, 1, tzinfo=UTC)
    days = calendar.monthrange(d.year, d.month)[1]
    return start.timestamp(), start.timestamp() + days * 86400.0


def month_label(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m")

"""Calendar and lag features for the peak forecaster, in plain Python (no numpy), so the
resident agent can build them and evaluate an exported model without scikit-learn.

Input: per-minute load (e.g. req/s averaged over each minute), oldest first, and the
Unix time of the first minute. Row ``i`` describes what is known at the end of minute
``i``; its target is the peak over the next ``horizon`` minutes (``i+1 … i+horizon``).
Levels enter as log-ratios to the recent 15-minute mean, so a model learned at one
traffic level applies at another (traces with trends, apps that grow).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

DAY = 1440
WEEK = 7 * DAY
NAMES = (
    "last", "mean5", "mean60", "max15", "yday_peak", "yday_now", "week_peak", "week_now",
    "day_trend", "tod_sin", "tod_cos", "dow", "weekend", "has_day", "has_week",
)  # fmt: skip


def _l(x: float) -> float:
    return math.log1p(max(x, 0.0))


def forward_peaks(values: Sequence[float], horizon: int) -> list[float]:
    """``out[i] = max(values[i+1 : i+1+horizon])`` (nan where the window runs past the end)."""
    n = len(values)
    out = [math.nan] * n
    dq: deque[int] = deque()
    # sliding max over windows [j, j+horizon-1]; out[i] uses j = i+1
    for k in range(n):
        while dq and values[dq[-1]] <= values[k]:
            dq.pop()
        dq.append(k)
        j = k - horizon + 1
        if j >= 1:
            while dq[0] < j:
                dq.popleft()
            out[j - 1] = values[dq[0]]
    return out


def rows(
    values: Sequence[float],
    start: float,
    horizon: int,
    indices: Sequence[int] | None = None,
    zone: str = "UTC",
) -> tuple[list[list[float]], list[float]]:
    """Feature rows for ``indices`` (default: every minute with an hour of history) and
    each row's base level (the log1p of the 15-minute mean) to add back to predictions."""
    n = len(values)
    if indices is None:
        indices = range(60, n)
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    fpeak = forward_peaks(values, horizon)
    tz = ZoneInfo(zone)
    out: list[list[float]] = []
    bases: list[float] = []
    max15: deque[int] = deque()
    last_k = -1
    for i in indices:
        if i < 0 or i >= n:
            raise IndexError(i)

        def mean(w: int, at: int = i) -> float:
            lo = max(at - w + 1, 0)
            return (prefix[at + 1] - prefix[lo]) / (at + 1 - lo)

        m15 = mean(15)
        base = _l(m15)
        # running max of the last 15 minutes (indices are usually increasing)
        if i < last_k:
            max15.clear()
            last_k = -1
        for k in range(max(last_k + 1, i - 14), i + 1):
            while max15 and values[max15[-1]] <= values[k]:
                max15.pop()
            max15.append(k)
        last_k = i
        while max15[0] < i - 14:
            max15.popleft()
        mx15 = values[max15[0]]
        m60 = mean(60)
        has_day = i - DAY >= 0 and not math.isnan(fpeak[i - DAY])
        has_week = i - WEEK >= 0 and not math.isnan(fpeak[i - WEEK])
        yday_peak = _l(fpeak[i - DAY]) - base if has_day else 0.0
        yday_now = _l(values[i - DAY]) - base if has_day else 0.0
        day_trend = _l(m60) - _l(mean(60, i - DAY)) if i - DAY >= 59 else 0.0
        week_peak = _l(fpeak[i - WEEK]) - base if has_week else yday_peak
        week_now = _l(values[i - WEEK]) - base if has_week else yday_now
        when = datetime.fromtimestamp(start + 60 * i, tz)
        tod = (when.hour * 60 + when.minute) / DAY * 2 * math.pi
        out.append([
            _l(values[i]) - base, _l(mean(5)) - base, _l(m60) - base, _l(mx15) - base,
            yday_peak, yday_now, week_peak, week_now, day_trend,
            math.sin(tod), math.cos(tod), float(when.weekday()), float(when.weekday() >= 5),
            float(has_day), float(has_week),
        ])  # fmt: skip
        bases.append(base)
    return out, bases


def dataset(
    values: Sequence[float], start: float, horizon: int, every: int = 1, zone: str = "UTC"
) -> tuple[list[list[float]], list[float], list[float]]:
    """(X, y, bases) for training: rows whose future window is fully known; ``y`` is the
    log-ratio of the future peak to the base level."""
    fpeak = forward_peaks(values, horizon)
    idx = [i for i in range(60, len(values) - horizon, every)]
    x, bases = rows(values, start, horizon, idx, zone)
    y = [_l(fpeak[i]) - b for i, b in zip(idx, bases, strict=True)]
    return x, y, bases


def to_load(prediction: float, base: float) -> float:
    """A predicted log-ratio back to a load value."""
    return max(math.expm1(prediction + base), 0.0)


def resample_minutes(points: Sequence[tuple[float, float]]) -> tuple[float, list[float]]:
    """(start, per-minute values) from (timestamp, value) points of any step ≥ 1 minute,
    each value (a rate) held over the minutes of its step; gaps take the last value."""
    if not points:
        return 0.0, []
    pts = sorted(points)
    start = pts[0][0] // 60 * 60
    out: list[float] = []
    for k, (ts, v) in enumerate(pts):
        nxt = pts[k + 1][0] if k + 1 < len(pts) else ts + 60
        idx = int((ts - start) // 60)
        span = max(round((nxt - ts) / 60), 1)
        while len(out) < idx:
            out.append(out[-1] if out else v)
        out[idx:idx + span] = [v] * span  # fmt: skip
    return start, out
